"""PII patterns that make scanning slow: whether they are refused, and what a value costs.

    .venv/bin/python bench/pii_pathological.py
    .venv/bin/python bench/pii_pathological.py --sizes 2000 100000 1000000

For each pattern: the safety check's verdict (governance.compliance.regex_safety), then
the time of scan_value on values of each size with the shipped patterns plus that one
(the best of a few runs; each run scans a fresh value, so RE2 cannot reuse the DFA
states it built for the last one). A refused pattern is measured too, compiled past
the check, to show what it would cost. Values are random letters, digits, spaces and
line breaks without the pattern's final letter, so the search runs to the end.
No database. Long values are scanned in windows within a time budget (see
governance/compliance/pii/scanner.py); run it on an older tree to compare.
"""

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import re2
from django.core.exceptions import ValidationError

from governance.compliance.pii import scanner
from governance.compliance.regex_safety import check_pattern

PATTERNS = {
    "probe: [\\s\\S]{1,1000} x 8 then Z": r"[\s\S]{1,1000}" * 8 + "Z",
    "nested: ([\\s\\S]{1,30}){1,30}Z": r"([\s\S]{1,30}){1,30}Z",
    "worst found within the bounds: [ab][\\s\\S]{1,600}Z": r"[ab][\s\S]{1,600}Z",
}
ALPHABET = "ab1 cd\n@."


def verdict(regex: str) -> str:
    try:
        check_pattern(regex)
    except ValidationError as error:
        return "refused: " + " ".join(error.messages)
    return "accepted"


def pattern_set(regex: str) -> scanner.PatternSet:
    """The shipped patterns plus `regex`, compiled past the safety check."""
    extra = {
        "id": None,
        "name": "extra",
        "pii_type": "other",
        "regex": regex,
        "validator": "none",
        "context_words": [],
        "confidence": 0.9,
        "min_confidence": 0.5,
    }
    shipped = list(scanner.shipped_patterns())
    real_check = scanner.check_pattern
    scanner.check_pattern = lambda regex: None
    try:
        added = scanner.compile_pattern(extra)
    finally:
        scanner.check_pattern = real_check
    return scanner.PatternSet([*shipped, added])


def seconds(patterns: scanner.PatternSet, size: int, runs: int, rnd: random.Random) -> float:
    best = float("inf")
    for _ in range(runs):
        value = "".join(rnd.choice(ALPHABET) for _ in range(size))
        started = time.perf_counter()
        scanner.scan_value(value, patterns, field_name="notes")
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rnd = random.Random(11)
    budget = getattr(scanner, "SCAN_BUDGET_SECONDS", None)
    print(
        f"long values: windows of {scanner.WINDOW_BYTES:,} bytes, {budget * 1000:.0f} ms a value"
        if budget
        else "long values: one pass, no time budget"
    )
    shipped = scanner.shipped_patterns()
    sizes = "  ".join(f"{size:>9,} ch" for size in args.sizes)
    print(f"{'patterns':58} {sizes}")
    timings = [seconds(shipped, size, args.runs, rnd) for size in args.sizes]
    print(f"{'shipped only':58} " + "  ".join(f"{t * 1000:>9.2f} ms" for t in timings))
    for label, regex in PATTERNS.items():
        compiled = re2.compile(regex)
        print(f"\n{label}: RE2 program {compiled.programsize:,} instructions")
        print(f"  {verdict(regex)}")
        patterns = pattern_set(regex)
        timings = [seconds(patterns, size, args.runs, rnd) for size in args.sizes]
        print(f"{'  shipped + this one':58} " + "  ".join(f"{t * 1000:>9.2f} ms" for t in timings))


if __name__ == "__main__":
    main()
