"""Ingestion benchmark: a stored CSV file to committed raw records, against plain COPY.

Generates a seeded CSV of realistic customer records, stores it with the same
service the API and admin use (store_upload), then times the load the Celery task
runs (services.load_batch), in this process, from the stored file to the commit.
The same rows, exactly as the load wrote them, are then COPYed without any parsing
into a bare table (the limit), into a table with raw_record's indexes and into
raw_record itself, to show where the time goes.

It runs against a database of its own (DATABASE_URL, default atlas_bench), created if
missing and migrated first:

    .venv/bin/python bench/ingest.py                  # 1,000,000 rows
    .venv/bin/python bench/ingest.py --rows 200000 --quick

Peak memory is the process's peak resident set (ru_maxrss), taken right after the
load; the CSV is written and read as a stream, so it is the load's peak.
"""

import argparse
import contextlib
import csv
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# fmt: off
FIRST = ["Anna", "Ben", "Chloé", "Daniel", "Emma", "Felix", "Greta", "Hugo", "Inès", "Jonas",
         "Karin", "Lucas", "Maria", "Noah", "Olga", "Paul", "Rosa", "Sven", "Tom", "Zoé"]
LAST = ["Martin", "Müller", "García", "Rossi", "Smith", "Jansen", "Dubois", "Novak", "Silva",
        "Kowalski", "Andersson", "O'Brien", "Fischer", "López", "Bianchi", "de Vries"]
# fmt: on
COUNTRIES = ["FR", "DE", "ES", "IT", "GB", "NL", "BE", "PT", "IE", "US", "PL", "SE"]
CITIES = ["Paris", "Berlin", "Madrid", "Roma", "London", "Amsterdam", "Bruxelles", "Lisboa"]
# fmt: off
WORDS = ["order", "delivered", "late", "customer", "asked", "refund", "invoice", "address",
         "changed", "prefers", "email", "phone", "call", "back", "warranty", "claim", "discount",
         "loyal", "VIP", "package", "damaged,", "replaced"]
# fmt: on


def generate_csv(path: Path, rows: int, seed: int) -> int:
    """A CSV of `rows` customer records; returns its size in bytes."""
    rnd = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "customer_id",
                "first_name",
                "last_name",
                "email",
                "amount",
                "currency",
                "created_at",
                "country",
                "city",
                "note",
            ]
        )
        for number in range(1, rows + 1):
            first, last = rnd.choice(FIRST), rnd.choice(LAST)
            note = " ".join(rnd.choices(WORDS, k=rnd.randint(0, 12)))
            if number % 50 == 0:
                note = f'said "{note}"'  # quoted text, as free text has
            writer.writerow(
                [
                    number,
                    first,
                    last,
                    f"{first}.{last}{number}@example.com".lower().replace(" ", ""),
                    f"{rnd.uniform(0, 5000):.2f}",
                    "EUR",
                    (start + timedelta(seconds=rnd.randint(0, 86400 * 700))).isoformat(),
                    rnd.choice(COUNTRIES),
                    rnd.choice(CITIES),
                    note,
                ]
            )
    return path.stat().st_size


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


COLUMNS = (
    "received_at, batch_id, dataset_id, line_number, payload, raw_text, parse_error, payload_hash"
)
TABLE_COLUMNS = """(
    received_at timestamptz NOT NULL, batch_id bigint NOT NULL, dataset_id bigint NOT NULL,
    line_number bigint NOT NULL, payload jsonb NULL, raw_text text NOT NULL,
    parse_error text NOT NULL, payload_hash varchar(64) NOT NULL)"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--quick", action="store_true", help="Skip the index breakdown.")
    parser.add_argument("--keep", action="store_true", help="Keep the loaded rows afterwards.")
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="atlas-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas_site.settings.local")
    os.environ["DEBUG"] = "0"
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    import django

    from bench import database

    database.prepare()
    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from explore import parsers, services
    from explore.copy_writer import copy_records
    from explore.models import LandingBatch
    from governance.pipeline.models import Dataset, Run

    call_command("migrate", verbosity=0)
    results: list[tuple[str, float, int | None]] = []

    csv_path = workdir / "customers.csv"
    started = time.perf_counter()
    size = generate_csv(csv_path, options.rows, options.seed)
    print(f"generated {options.rows:,} rows, {size / 1e6:.1f} MB, in {workdir}", flush=True)
    results.append(
        ("generate the CSV (not part of ingestion)", time.perf_counter() - started, None)
    )

    dataset = Dataset.objects.create(
        slug=f"bench-{datetime.now():%Y%m%d%H%M%S}", name="Benchmark", auto_promote=False
    )
    started = time.perf_counter()
    with csv_path.open("rb") as handle:
        batch = services.store_upload(  # not queued: the load runs here, not on a worker
            dataset=dataset, file=handle, filename=csv_path.name, actor="bench", queue=False
        )
    results.append(
        ("store_upload: checks, sha256, copy to storage", time.perf_counter() - started, None)
    )

    rss_before = rss_mb()
    started = time.perf_counter()
    run = services.load_batch(batch_id=batch.pk, triggered_by="bench")
    load_seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    batch.refresh_from_db()
    assert run is not None and batch.status == "loaded", batch.error
    assert batch.rows_total == options.rows, batch.rows_total
    results.append(("load_batch: stored file -> committed raw records", load_seconds, options.rows))
    print(f"loaded in {load_seconds:.1f} s; peak RSS {peak:.0f} MB", flush=True)

    def export_rows(batch_id: int) -> Path:
        """The rows exactly as the load wrote them (with this batch id), in COPY format."""
        path = workdir / f"rows-{batch_id}.copy"
        columns = COLUMNS.replace("batch_id", f"{batch_id} AS batch_id")
        with connection.cursor() as cursor, path.open("wb") as out:
            query = (
                f"COPY (SELECT {columns} FROM explore.raw_record "
                f"WHERE batch_id = {batch.pk} ORDER BY line_number) TO STDOUT"
            )
            with cursor.copy(query) as copy:
                for block in copy:
                    out.write(block)
        return path

    copy_file = export_rows(batch.pk)

    # Python's share alone: read, parse and format every row, sent nowhere.
    class Sink:
        def write(self, data):
            pass

    class NoDatabase:
        def execute(self, *args):
            pass

        @contextlib.contextmanager
        def copy(self, statement):
            yield Sink()

    begun = time.perf_counter()
    with csv_path.open("rb") as handle:
        reader = parsers.reader_for("csv", handle, max_record_bytes=services.max_record_bytes())
        copy_records(NoDatabase(), reader, batch_id=1, dataset_id=1, received_at=datetime.now(UTC))
    results.append(
        (
            "parse + format only, no database (Python's share)",
            time.perf_counter() - begun,
            options.rows,
        )
    )

    def plain_copy(label: str, table: str, ddl: str | None, rows_file: Path = copy_file) -> None:
        with connection.cursor() as cursor:
            if ddl:
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
                cursor.execute(ddl)
            cursor.execute("CHECKPOINT")  # start each COPY with no dirty WAL pending
        begun = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor, rows_file.open("rb") as data:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            with cursor.copy(f"COPY {table} ({COLUMNS}) FROM STDIN") as copy:
                while block := data.read(1 << 20):
                    copy.write(block)
        results.append((label, time.perf_counter() - begun, options.rows))
        print(f"{label}: {time.perf_counter() - begun:.1f} s", flush=True)
        if ddl:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {table}")

    like = "(LIKE explore.raw_record INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES"
    plain_copy(
        "plain COPY: bare table, same columns, no index",
        "public.bench_bare",
        f"CREATE TABLE public.bench_bare {TABLE_COLUMNS}",
    )
    if not options.quick:
        plain_copy(
            "plain COPY: bare UNLOGGED table",
            "public.bench_unlogged",
            f"CREATE UNLOGGED TABLE public.bench_unlogged {TABLE_COLUMNS}",
        )
        plain_copy(
            "plain COPY: a table with raw_record's 3 indexes",
            "public.bench_indexes",
            f"CREATE TABLE public.bench_indexes {like})",
        )
    # The real table, as the load meets it: a second batch row so that line numbers are new.
    twin = LandingBatch.objects.get(pk=batch.pk)
    twin.pk, twin.key, twin.sha256 = None, uuid.uuid4(), "0" * 64
    twin.save()
    plain_copy(
        "plain COPY into explore.raw_record (3 indexes)",
        "explore.raw_record",
        None,
        export_rows(twin.pk),
    )

    bare = next(
        seconds for label, seconds, _ in results if label.startswith("plain COPY: bare table")
    )
    print()
    print(
        f"Ingestion benchmark: {options.rows:,} CSV rows, {size / 1e6:.1f} MB; "
        f"{os.cpu_count()} CPUs; PostgreSQL {connection.pg_version // 10000}"
    )
    print(f"{'step':<58}{'seconds':>9}{'rows/s':>11}{'vs bare COPY':>14}")
    for label, seconds, rows in results:
        rate = f"{rows / seconds:>11,.0f}" if rows else f"{'':>11}"
        ratio = f"{bare / seconds:>13.0%}" if rows else ""
        print(f"{label:<58}{seconds:>9.1f}{rate} {ratio}")
    print(
        f"peak RSS (ru_maxrss) after the load: {peak:.0f} MB "
        f"(RSS before it: {rss_before:.0f} MB); goal: < 300 MB"
    )
    print(f"load rows/s from the run's own timing: {run.detail['rows_per_second']:,}")

    if not options.keep:
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM explore.raw_record WHERE batch_id IN (%s, %s)", [batch.pk, twin.pk]
            )
        Run.objects.filter(dataset=dataset).delete()
        LandingBatch.objects.filter(pk__in=[batch.pk, twin.pk]).delete()
        dataset.delete()
    for path in sorted(workdir.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    workdir.rmdir()


if __name__ == "__main__":
    main()
