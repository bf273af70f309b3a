"""Promotion throughput: explore → chart and chart → navigate, against their limits.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/atlas_bench .venv/bin/python bench/promote.py
    .venv/bin/python bench/promote.py --rows 100000      # a quicker run

Lands N seeded raw records with realistic PII (names, emails, phones, SSNs, card
numbers, IBANs, IPs, free-text notes) straight into explore with COPY, then measures
in the same run:
  1. explore → chart with `promote_to_chart` (the code Celery runs), rows/s;
  2. the limit for (1): the PII scan alone, in Python, over the same string values on
     all cores;
  3. a bare SQL INSERT ... SELECT of the same rows into an unindexed table;
  4. chart → navigate with `promote_to_navigate`, and its limit, the bare SQL aggregate
     of the same metrics over chart.
The database named by DATABASE_URL (default atlas_bench) is created if missing and
migrated first, and the benchmark's dataset is made anew each run (a dataset slug with
the run's timestamp).

    .venv/bin/python bench/promote.py --workers 2 --rows 200000

measures instead a promotion shared by several worker processes (chart.shared_promotion)
against one process, in the same run, on two datasets landed with the same records: one
process promoting alone, then that process with N - 1 more, each judging on one core (no
fork pool, as a Celery worker with ATLAS_PROMOTION_WORKERS=1 and ATLAS_PROMOTION_HELPERS
set), and prints both rates and their ratio.
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas_site.settings.local")
import django

from bench import database

database.prepare()
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from atlas_site.testing import pii_labelled as labelled  # noqa: E402
from governance.compliance.pii.scanner import load_patterns, scan_value  # noqa: E402

SEED = 20261126
COUNTRIES = ["DE", "FR", "GB", "NL", "US", "ES", "IT", "PL"]
WORDS = ["please", "deliver", "after", "five", "call", "before", "ring", "twice"]
WORDS += ["left", "parcel", "with", "neighbour"]


def make_record(rng: random.Random, number: int, start: datetime) -> dict:
    first, last = rng.choice(labelled.FIRST_NAMES).title(), rng.choice(labelled.LAST_NAMES).title()
    note = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 12)))
    roll = rng.random()
    if roll < 0.05:
        note += f" my card is {labelled.make_card(rng)}"
    elif roll < 0.10:
        note += f" reach me at {labelled.make_email(rng)}"
    return {
        "customer_id": str(number),
        "name": f"{first} {last}",
        "email": labelled.make_email(rng),
        "phone": labelled.make_phone(rng),
        "ssn": labelled.make_ssn(rng),
        "card": labelled.make_card(rng),
        "iban": labelled.make_iban(rng),
        "ip": labelled.make_ipv4(rng) if rng.random() < 0.7 else labelled.make_ipv6(rng),
        "country": rng.choice(COUNTRIES),
        "amount": f"{rng.randrange(100, 10**6) / 100:.2f}",
        "ordered_at": (start + timedelta(seconds=rng.randrange(86400 * 365))).isoformat(),
        "notes": note,
    }


CONTRACT = [
    ("customer_id", "integer", None),
    ("name", "string", "confidential"),
    ("email", "email", "confidential"),
    ("phone", "string", "confidential"),
    ("ssn", "string", "restricted"),
    ("card", "string", "restricted"),
    ("iban", "string", "restricted"),
    ("ip", "string", "internal"),
    ("country", "enum", None),
    ("amount", "decimal", None),
    ("ordered_at", "datetime", None),
    ("notes", "string", None),
]


def make_dataset():
    from governance.compliance.models import ClassificationLevel
    from governance.pipeline.models import Dataset, DatasetField
    from navigate.models import MetricDefinition

    levels = {level.name: level for level in ClassificationLevel.objects.all()}
    dataset = Dataset.objects.create(
        slug=f"bench-{datetime.now(UTC):%Y%m%d%H%M%S%f}",
        name="Promotion benchmark",
        business_key=["customer_id"],
        quality_threshold=0,
    )
    for position, (name, data_type, level) in enumerate(CONTRACT):
        DatasetField.objects.create(
            dataset=dataset,
            name=name,
            position=position,
            data_type=data_type,
            allowed_values=COUNTRIES if data_type == "enum" else [],
            classification=levels.get(level) if level else None,
        )
    MetricDefinition.objects.create(
        slug=f"{dataset.slug}-revenue",
        name="Revenue by day and country",
        dataset=dataset,
        aggregation="sum",
        value_field="amount",
        time_field="ordered_at",
        grain="day",
        dimension_fields=["country"],
    )
    MetricDefinition.objects.create(
        slug=f"{dataset.slug}-orders",
        name="Orders by month",
        dataset=dataset,
        aggregation="count",
        time_field="ordered_at",
        grain="month",
    )
    return dataset


def land(dataset, records: list[dict]) -> None:
    """COPY the records into explore as one landed batch (the ingestion's end state)."""
    from explore.models import LandingBatch

    received = datetime.now(UTC)
    batch = LandingBatch.objects.create(
        key=uuid.uuid4(),
        dataset=dataset,
        sha256=uuid.uuid4().hex * 2,
        format="jsonl",
        received_at=received,
        status="loaded",
        rows_total=len(records),
        rows_parsed=len(records),
    )
    columns = (
        "received_at, batch_id, dataset_id, line_number, payload, raw_text, parse_error, "
        "payload_hash"
    )
    with connection.cursor() as cursor:
        raw = cursor.connection
        with raw.cursor().copy(f'COPY "explore"."raw_record" ({columns}) FROM STDIN') as copy:
            for line, record in enumerate(records, start=1):
                text = json.dumps(record)
                copy.write_row((received, batch.pk, dataset.pk, line, text, text, "", ""))
    connection.commit() if not connection.get_autocommit() else None


def _scan_strings(values: list[tuple[str, str]]) -> int:
    patterns = load_patterns()
    found = 0
    for field_name, value in values:
        found += len(scan_value(value, patterns, field_name=field_name))
    return found


def scan_alone(records: list[dict]) -> float:
    """The PII scan by itself over the same string values, on all cores: values/s."""
    values = [(name, value) for record in records for name, value in record.items()]
    workers = os.cpu_count() or 1
    size = len(values) // (workers * 4) + 1
    parts = [values[i : i + size] for i in range(0, len(values), size)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_scan_strings, parts))
    elapsed = time.perf_counter() - started
    return len(records) / elapsed


def timed(label: str, function):
    started = time.perf_counter()
    result = function()
    elapsed = time.perf_counter() - started
    print(f"  {label}: {elapsed:.1f} s", flush=True)
    return result, elapsed


def bare_insert_select(dataset) -> float:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE bench_bare (raw_record_id bigint, data jsonb)")
        started = time.perf_counter()
        cursor.execute(
            'INSERT INTO bench_bare SELECT id, payload FROM "explore"."raw_record" '
            "WHERE dataset_id = %s",
            [dataset.pk],
        )
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_bare")
    return elapsed


def bare_aggregate(dataset) -> float:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT date_trunc('day', (data->>'ordered_at')::timestamptz AT TIME ZONE 'UTC'),
                   data->>'country', sum((data->>'amount')::numeric), count(*)
              FROM "chart"."chart_record" WHERE dataset_id = %s AND is_current
             GROUP BY 1, 2
            """,
            [dataset.pk],
        )
        cursor.fetchall()
        cursor.execute(
            """
            SELECT date_trunc('month', (data->>'ordered_at')::timestamptz AT TIME ZONE 'UTC'),
                   count(*)
              FROM "chart"."chart_record" WHERE dataset_id = %s AND is_current
             GROUP BY 1
            """,
            [dataset.pk],
        )
        cursor.fetchall()
    return time.perf_counter() - started


def join_shared_run(slug: str) -> None:
    """A helper process: wait for the dataset's shared promotion to run, and share it."""
    from chart.services import help_promote_to_chart
    from governance.pipeline.models import Run, RunKind, RunStatus

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        run = (
            Run.objects.select_related("dataset")
            .filter(dataset__slug=slug, kind=RunKind.PROMOTE_CHART, status=RunStatus.RUNNING)
            .first()
        )
        if run is not None:
            help_promote_to_chart(run=run)
            return
        time.sleep(0.01)
    raise SystemExit(f"no promotion of {slug} started")


def cpu_seconds() -> float:
    """CPU time of this process and its ended children (user and system)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def compare_workers(records: list[dict], workers: int, rounds: int) -> None:
    """One process against `workers` processes sharing a promotion, on the same records.

    Each round lands the records twice and promotes one copy with one process, the other
    with `workers`; rounds alternate the two, so that load from elsewhere on a shared
    machine weighs on both alike.
    """
    from chart.services import promote_to_chart
    from chart.signals import helpers_wanted

    # The helpers here are this script's processes, not Celery tasks.
    helpers_wanted.disconnect(dispatch_uid="orchestration.send_promotion_helpers")
    os.environ["ATLAS_PROMOTION_WORKERS"] = "1"
    one_seconds = many_seconds = 0.0
    for number in range(1, rounds + 1):
        alone, shared = make_dataset(), make_dataset()
        land(alone, records)
        land(shared, records)

        def one(alone=alone):
            return promote_to_chart(dataset=alone, triggered_by="benchmark", helpers=1)

        def many(shared=shared):
            helpers = [
                subprocess.Popen(
                    [sys.executable, __file__, "--join", shared.slug],
                    env={**os.environ, "ATLAS_PROMOTION_WORKERS": "1"},
                )
                for _ in range(workers - 1)
            ]
            time.sleep(3)  # their Django set up before the clock starts, as a worker's is
            started, cpu = time.perf_counter(), cpu_seconds()
            run = promote_to_chart(dataset=shared, triggered_by="benchmark", helpers=workers - 1)
            elapsed = time.perf_counter() - started
            for helper in helpers:
                helper.wait(timeout=60)
            used = cpu_seconds() - cpu  # the helpers' include their 3 s of setting up
            print(f"  (CPU of the {workers} processes: {used:.1f} s in {elapsed:.1f} s)")
            return run, elapsed

        order = ("one", "many") if number % 2 else ("many", "one")
        for which in order:
            if which == "one":
                cpu = cpu_seconds()
                run, seconds = timed(f"round {number}: explore → chart, 1 process", one)
                print(f"  (CPU of the process: {cpu_seconds() - cpu:.1f} s in {seconds:.1f} s)")
                one_seconds += seconds
            else:
                run, seconds = many()
                print(f"  round {number}: explore → chart, {workers} processes: {seconds:.1f} s")
                many_seconds += seconds
            assert run.rows_in == len(records), (run.rows_in, run.error)
            assert run.status == "succeeded", run.error
    total = len(records) * rounds
    one_rate, many_rate = total / one_seconds, total / many_seconds
    print()
    print(f"{'explore → chart, shared promotion':<44}{'rows/s':>12}")
    print(f"{'  1 process':<44}{one_rate:>12,.0f}")
    print(f"{f'  {workers} processes':<44}{many_rate:>12,.0f}")
    print(
        f"\n{workers} processes / 1 process: {many_rate / one_rate:.2f}x "
        f"(goal >= {0.85 * workers:.1f}x with a core for each process; "
        f"{os.cpu_count()} cores here; {rounds} round(s) of {len(records):,} records)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="compare a promotion shared by this many processes with one process",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of --workers")
    parser.add_argument("--join", help=argparse.SUPPRESS)  # a helper process of --workers
    args = parser.parse_args()
    if args.join:
        join_shared_run(args.join)
        return

    from chart.services import promote_to_chart
    from navigate.services import promote_to_navigate

    call_command("migrate", verbosity=0)
    print(f"Promotion benchmark: {args.rows:,} records, {os.cpu_count()} cores", flush=True)
    rng = random.Random(SEED)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = [make_record(rng, number, start) for number in range(1, args.rows + 1)]
    if args.workers > 1:
        compare_workers(records, args.workers, args.rounds)
        return
    dataset = make_dataset()
    timed("land raw records (COPY)", lambda: land(dataset, records))

    run, chart_seconds = timed(
        "explore → chart (promote_to_chart)",
        lambda: promote_to_chart(dataset=dataset, triggered_by="benchmark"),
    )
    assert run.rows_in == args.rows, (run.rows_in, run.error)
    scan_rate, _ = timed("PII scan alone, all cores", lambda: scan_alone(records))
    bare_insert = bare_insert_select(dataset)
    nav_run, nav_seconds = timed(
        "chart → navigate (promote_to_navigate)",
        lambda: promote_to_navigate(dataset=dataset, triggered_by="benchmark"),
    )
    assert nav_run.status == "succeeded", nav_run.error
    aggregate_seconds = bare_aggregate(dataset)

    chart_rate = args.rows / chart_seconds
    print()
    print(f"{'stage':<44}{'rows/s':>12}{'vs limit':>12}")
    print(f"{'explore → chart (Atlas)':<44}{chart_rate:>12,.0f}{chart_rate / scan_rate:>11.0%}")
    print(f"{'  limit: PII scan alone, all cores':<44}{scan_rate:>12,.0f}")
    print(f"{'  reference: bare INSERT ... SELECT':<44}{args.rows / bare_insert:>12,.0f}")
    print(
        f"{'chart → navigate (Atlas)':<44}{args.rows / nav_seconds:>12,.0f}"
        f"{nav_seconds / aggregate_seconds:>11.1f}x time"
    )
    print(f"{'  limit: bare SQL aggregate':<44}{args.rows / aggregate_seconds:>12,.0f}")
    print(
        f"\nrun {run.pk}: in {run.rows_in:,}, promoted {run.rows_promoted:,}, "
        f"quarantined {run.rows_quarantined:,}; goal explore → chart >= 55% of the scan "
        "limit, chart → navigate <= 2x the bare aggregate"
    )


if __name__ == "__main__":
    main()
