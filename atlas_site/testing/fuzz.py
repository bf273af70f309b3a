"""Hypothesis strategies and settings shared by the fuzz tests.

The "ci" profile is bounded and derandomized: the same examples every run, so CI is
stable and the whole fuzz set stays well under a minute. `ATLAS_FUZZ_EXAMPLES=<n>`
multiplies nothing but the number of examples, for a longer local hunt.
"""

import codecs
import gzip
import json
import os
from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    # The tests' database fixtures are function-scoped on purpose: every example adds
    # new rows next to the earlier ones, which is what a steward or a client does too.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("ci")


def examples(ci: int) -> int:
    """Examples per fuzz test: `ci` by default, ATLAS_FUZZ_EXAMPLES to hunt longer."""
    return int(os.environ.get("ATLAS_FUZZ_EXAMPLES", ci))


# Counts of cases tried and rows checked, printed by each test (pytest -s shows them).
FIGURES: Counter = Counter()


def report(name: str, **figures: int) -> None:
    FIGURES.update({f"{name}.{key}": value for key, value in figures.items()})
    print(f"\nfuzz {name}: " + ", ".join(f"{key} {value:,}" for key, value in figures.items()))


# --- Hostile strings --------------------------------------------------------------------

NASTY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ufeff",
    "\u202e\u0645\u0631\u062d\u0628\u0627",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f",
    "\U0001f4a9\U0001f1eb\U0001f1f7",
    "'; DROP TABLE pipeline.dataset; --",
    '"',
    "\\",
    "\\u0000",
    "<script>alert(1)</script>",
    "{{ 7*7 }}",
    "%s%s%n",
    "=cmd|' /C calc'!A0",
    "../../../../etc/passwd",
    "(a+)+$",
    "((a*)*)*b",
    "(?P<x>",
    "[",
    "a{99999}",
    "(?=a)",
    "\\1",
    "x" * 5000,
    "9" * 400,
    "1e309",
    "-0",
    "NaN",
    "Infinity",
    "P99999999999D",
    "99999999999 00:00:00",
    '{"a":' * 200 + "1" + "}" * 200,
    "[" * 5000,
    "\r\n\t\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
]

# Text a form or a client can send: any character but lone surrogates (not encodable).
hostile_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40).map(lambda s: s * 3),
)


def deep_json(depth: int, kind: str = "array") -> str:
    if kind == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


# --- Files ------------------------------------------------------------------------------

ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "latin-1", "cp1252"]


def encode(text: str, encoding: str) -> bytes:
    return codecs.encode(text, encoding, "replace")


@st.composite
def csv_text(draw) -> str:
    # Mostly a header naming a contract field (else the file is refused at the door).
    first = draw(st.one_of(st.sampled_from(["id", "name", "email"]), hostile_text))
    names = [first, *draw(st.lists(hostile_text, max_size=4))]
    header = ",".join(json.dumps(name) if draw(st.booleans()) else name for name in names)
    rows = draw(
        st.lists(
            st.lists(hostile_text, min_size=0, max_size=len(names) + 1).map(",".join),
            max_size=8,
        )
    )
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return newline.join([header, *rows]) + draw(st.sampled_from(["", newline]))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def jsonl_text(draw) -> str:
    lines = draw(
        st.lists(
            st.one_of(
                json_values.map(lambda value: json.dumps(value, ensure_ascii=False)),
                st.dictionaries(hostile_text, json_values, max_size=5).map(json.dumps),
                hostile_text,
                st.integers(1, 3000).map(lambda depth: deep_json(depth, "object")),
            ),
            max_size=8,
        )
    )
    return "\n".join(line.replace("\n", " ") for line in lines)


@st.composite
def json_array_text(draw) -> str:
    elements = draw(
        st.lists(
            st.one_of(
                st.dictionaries(hostile_text, json_values, max_size=5).map(json.dumps),
                json_values.map(json.dumps),
                hostile_text,
                st.integers(1, 3000).map(deep_json),
            ),
            max_size=8,
        )
    )
    text = "[" + ",".join(elements)
    return text + draw(st.sampled_from(["]", "", ",]", "] trailing", "]]"]))


@st.composite
def upload(draw) -> tuple[str, bytes]:
    """(file name, bytes) as a client might send them: text in odd encodings, or garbage."""
    kind = draw(st.sampled_from(["csv", "jsonl", "json", "bytes"]))
    if kind == "bytes":
        data = draw(st.binary(max_size=3000))
    else:
        text = draw({"csv": csv_text(), "jsonl": jsonl_text(), "json": json_array_text()}[kind])
        data = encode(text, draw(st.sampled_from(ENCODINGS)))
        if draw(st.booleans()):  # a byte that is not UTF-8, or a NUL, somewhere
            at = draw(st.integers(0, len(data)))
            bad = draw(st.sampled_from([b"\xff", b"\x00", b"\xc3", b"\xed\xa0\x80"]))
            data = data[:at] + bad + data[at:]
    extension = draw(st.sampled_from([kind, "csv", "jsonl", "json", "txt", ""]))
    name = draw(st.sampled_from(["data", "../../x", "a b", "\u00e9t\u00e9", "x" * 300]))
    if draw(st.integers(0, 4)) == 0:
        data = gzip.compress(data)
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]  # truncated
        extension += ".gz"
    return f"{name}.{extension}" if extension else name, data


# --- URLs -------------------------------------------------------------------------------

# What a crafted link puts where a page expects an id (a path segment) or a filter value
# (a query parameter). NUL is probed apart: it must be a 400 (atlas_site.request_checks).
HOSTILE_IDS = [
    "abc",
    "-1",
    "0",
    "1.5",
    "1e3",
    "99999999999999999999",
    "%",
    "'",
    "..",
    "\u00e9",
    " 1",
    "1 OR 1=1",
    "\U0001f4a9",
]
HOSTILE_QUERY_VALUES = [
    *HOSTILE_IDS,
    "",
    " ",
    "\\",
    "1e999",
    "NaN",
    "-0",
    "[]",
    "{}",
    '{"a": 1}',
    "2024-13-45",
    "1970-01-01T00:00:00",
    "9999-12-31",
    "\u202e",
    "\\u0000",
    "<script>alert(1)</script>",
    "x" * 2000,
    "9" * 400,
]


def values_for(position: int, count: int, values: list[str]) -> list[str]:
    """`count` values from `values`, starting at a place that moves with `position`, so that
    every value is tried somewhere while each parameter gets only a few."""
    count = min(count, len(values))
    return [values[(position * count + i) % len(values)] for i in range(count)]
