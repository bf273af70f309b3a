"""Regex changes proposed for the shipped patterns in governance.compliance.reference_data.

Measured with `bench/pii_accuracy.py --suggested`. Once reference_data (and a data
migration for existing databases) adopts a change, delete it from here.
"""

from collections.abc import Mapping
from typing import Any

SUGGESTED_REGEXES = {
    # The shipped regex may start a match at any colon, so in "ip:2001:db8::1" it finds
    # ":2001:db8::1", which is no address, and the real one is lost. Starting at a word
    # boundary or at "::" finds "2001:db8::1".
    "IPv6 address": r"(?:\b[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"|::[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})",
}


def with_suggested_regexes(specs: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{**spec, "regex": SUGGESTED_REGEXES.get(spec["name"], spec["regex"])} for spec in specs]
