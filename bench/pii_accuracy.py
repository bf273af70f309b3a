"""PII detection: precision and recall per type on a labelled set, and scan throughput.

    .venv/bin/python bench/pii_accuracy.py              # shipped patterns, no database
    .venv/bin/python bench/pii_accuracy.py --from-db    # the enabled PiiPattern rows
    .venv/bin/python bench/pii_accuracy.py --patterns tuned.json --errors 20

Precision and recall are counted per value and type: a value labelled with a type
counts as found when the scanner reports that type anywhere in it. Throughput is
measured on order-like records of 8 string fields, on one core and on all cores.
"""

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atlas_site.testing.pii_labelled import (
    DEFAULT_SEED,
    DEFAULT_SIZE,
    PII_TYPES,
    LabelledValue,
    labelled_values,
    realistic_records,
)
from governance.compliance.pii.scanner import PatternSet, compile_patterns, scan_record, scan_value

GOAL = 0.99
GOAL_TYPES = {"email", "payment_card", "iban", "us_ssn", "ipv4", "ipv6"}


def pattern_specs(args: argparse.Namespace) -> list[dict]:
    if args.patterns:
        return json.loads(Path(args.patterns).read_text())
    if args.from_db:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas_site.settings.local")
        import django

        django.setup()
        from governance.compliance.models import PiiPattern

        return list(PiiPattern.objects.filter(enabled=True).values())
    from governance.compliance.reference_data import PII_PATTERNS

    return PII_PATTERNS


def measure_accuracy(values: list[LabelledValue], patterns: PatternSet, show_errors: int) -> bool:
    true_positives: Counter[str] = Counter()
    false_positives: Counter[str] = Counter()
    false_negatives: Counter[str] = Counter()
    errors: dict[str, list[str]] = defaultdict(list)
    for value in values:
        found = {m.pii_type for m in scan_value(value.text, patterns, field_name=value.field_name)}
        for pii_type in found | value.pii_types:
            if pii_type in found and pii_type in value.pii_types:
                true_positives[pii_type] += 1
                continue
            if pii_type in found:
                false_positives[pii_type] += 1
                label = f"{pii_type} false positive"
            else:
                false_negatives[pii_type] += 1
                label = f"{pii_type} missed"
            errors[label].append(f"[{value.kind}] field={value.field_name!r} {value.text!r}")

    print(f"Labelled values: {len(values)} ({sum(1 for v in values if v.pii_types)} with PII)")
    print(f"{'type':<14}{'labelled':>9}{'found':>7}{'TP':>7}{'FP':>5}{'FN':>5}"
          f"{'precision':>11}{'recall':>8}  goal")  # fmt: skip
    all_met = True
    for pii_type in PII_TYPES:
        tp, fp, fn = true_positives[pii_type], false_positives[pii_type], false_negatives[pii_type]
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        if pii_type in GOAL_TYPES:
            met = precision >= GOAL and recall >= GOAL
            all_met &= met
            verdict = "met" if met else "NOT MET"
        else:
            verdict = "-"
        print(f"{pii_type:<14}{tp + fn:>9}{tp + fp:>7}{tp:>7}{fp:>5}{fn:>5}"
              f"{precision:>11.4f}{recall:>8.4f}  {verdict}")  # fmt: skip
    if show_errors:
        for label in sorted(errors):
            print(f"\n{label} ({len(errors[label])}):")
            for line in errors[label][:show_errors]:
                print(f"  {line}")
    return all_met


_worker_patterns: PatternSet | None = None


def _start_worker(specs: list[dict]) -> None:
    global _worker_patterns  # one compiled set per worker process
    _worker_patterns = compile_patterns(specs)


def _scan_records(records: list[dict[str, str]]) -> float:
    """Scan in a worker; return the CPU seconds it took."""
    assert _worker_patterns is not None
    started = time.process_time()
    for record in records:
        scan_record(record, _worker_patterns)
    return time.process_time() - started


def measure_throughput(specs: list[dict], patterns: PatternSet, record_count: int) -> None:
    records = realistic_records(record_count, seed=DEFAULT_SEED + 1)
    fields = sum(len(record) for record in records)
    for record in records[:200]:  # warm the field-name context caches
        scan_record(record, patterns)

    # CPU time, so that other work on a shared machine does not count against the scanner.
    started = time.process_time()
    fields_with_pii = sum(len(scan_record(record, patterns)) for record in records)
    elapsed = time.process_time() - started
    print(
        f"\nThroughput on {record_count} records of 8 string fields ({fields} values, "
        f"{fields_with_pii} fields with PII):"
    )
    print(
        f"  1 core (CPU time):    {record_count / elapsed:>9,.0f} records/s  "
        f"{fields / elapsed:>10,.0f} values/s  {elapsed * 1e6 / fields:5.1f} us/value"
    )

    workers = os.cpu_count() or 1
    chunk = max(1, len(records) // (workers * 8))
    chunks = [records[i : i + chunk] for i in range(0, len(records), chunk)]
    with ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(specs,)) as pool:
        list(pool.map(_scan_records, chunks[:workers]))  # start and warm every worker
        started = time.perf_counter()
        cpu_seconds = sum(pool.map(_scan_records, chunks))
        elapsed = time.perf_counter() - started
    print(
        f"  {workers} processes (wall):  {record_count / elapsed:>9,.0f} records/s  "
        f"{fields / elapsed:>10,.0f} values/s  (load average {os.getloadavg()[0]:.1f})"
    )
    # What the workers would do with the cores to themselves.
    rate = record_count / cpu_seconds * workers
    print(
        f"  {workers} processes (CPU time): {rate:>8,.0f} records/s  "
        f"{rate * fields / record_count:>10,.0f} values/s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="labelled values")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--records", type=int, default=50_000, help="records for throughput")
    parser.add_argument("--errors", type=int, default=5, help="examples shown per error kind")
    parser.add_argument("--from-db", action="store_true", help="enabled PiiPattern rows")
    parser.add_argument("--patterns", help="a JSON list of pattern dicts, e.g. tuned regexes")
    args = parser.parse_args()

    specs = pattern_specs(args)
    patterns = compile_patterns(specs)
    values = labelled_values(args.size, seed=args.seed)
    all_met = measure_accuracy(values, patterns, args.errors)
    if args.records:
        measure_throughput(specs, patterns, args.records)
    print(f"\nGoal (precision and recall >= {GOAL} for {', '.join(sorted(GOAL_TYPES))}): "
          f"{'met' if all_met else 'NOT met'}")  # fmt: skip
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
