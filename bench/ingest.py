"""Ingestion benchmark: a stored CSV file to committed raw records, against plain COPY.

Generates a seeded CSV of realistic customer records, stores it with the same
service the API and admin use (store_upload, which encrypts it at rest), then times
the load the Celery task runs (services.load_batch), in this process, from the stored
file, decrypted as it is read, to the commit.
The same rows, exactly as the load wrote them, are then COPYed without any parsing
into a bare table (the limit), into a table with raw_record's indexes and into
raw_record itself, to show where the time goes. The load and the bare COPY run in
rounds, side by side (--rounds, 3 by default), and their medians are compared: the
speed of a shared machine's CPU drifts from one minute to the next.

It runs against a database of its own (DATABASE_URL, default atlas_bench), created if
missing and migrated first:

    .venv/bin/python bench/ingest.py                  # 1,000,000 rows
    .venv/bin/python bench/ingest.py --rows 200000 --rounds 1 --quick

Peak memory is the process's peak resident set (ru_maxrss), taken right after the
load; the CSV is written and read as a stream, so it is the load's peak.
"""

import argparse
import contextlib
import csv
import os
import random
import resource
import statistics
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
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of load and bare COPY.")
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

    def checkpoint() -> None:
        # Every timed step starts from the same state: no dirty pages or WAL from the
        # steps before it, so that none pays for another's checkpoint.
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")

    def forget(dataset: Dataset, batch_ids: list[int]) -> None:
        """Delete a round's rows, batches and dataset."""
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM explore.raw_record WHERE batch_id = ANY(%s)", [batch_ids])
            # Autovacuum may be off (it is on this machine): without this, every run's
            # dead rows stay, and the next runs load into ever larger files and indexes.
            cursor.execute("VACUUM explore.raw_record")
        Run.objects.filter(dataset=dataset).delete()
        LandingBatch.objects.filter(pk__in=batch_ids).delete()
        dataset.delete()

    def export_rows(source_batch_id: int, as_batch_id: int) -> Path:
        """A batch's rows exactly as the load wrote them, under another batch id, as COPY text."""
        path = workdir / f"rows-{as_batch_id}.copy"
        columns = COLUMNS.replace("batch_id", f"{as_batch_id} AS batch_id")
        with connection.cursor() as cursor, path.open("wb") as out:
            query = (
                f"COPY (SELECT {columns} FROM explore.raw_record "
                f"WHERE batch_id = {source_batch_id} ORDER BY id) TO STDOUT"
            )
            with cursor.copy(query) as copy:
                for block in copy:
                    out.write(block)
        return path

    def plain_copy(table: str, ddl: str | None, rows_file: Path) -> float:
        if ddl:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
                cursor.execute(ddl)
        checkpoint()
        begun = time.perf_counter()
        with (
            transaction.atomic(),
            connection.cursor() as cursor,
            rows_file.open("rb") as data,
            cursor.copy(f"COPY {table} ({COLUMNS}) FROM STDIN") as copy,
        ):
            while block := data.read(1 << 20):
                copy.write(block)
        seconds = time.perf_counter() - begun
        if ddl:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {table}")
        return seconds

    # Rounds of (load, bare COPY) one after the other: on a shared machine the CPU's
    # speed drifts from minute to minute, and the medians of pairs taken side by side
    # compare like with like.
    loads: list[float] = []
    bares: list[float] = []
    copy_file = None
    for round_number in range(1, options.rounds + 1):
        dataset = Dataset.objects.create(
            slug=f"bench-{datetime.now():%Y%m%d%H%M%S}-{round_number}",
            name="Benchmark",
            auto_promote=False,
        )
        started = time.perf_counter()
        with csv_path.open("rb") as handle:
            batch = services.store_upload(  # not queued: the load runs here, not on a worker
                dataset=dataset, file=handle, filename=csv_path.name, actor="bench", queue=False
            )
        if round_number == 1:
            results.append(
                (
                    "store_upload: checks, sha256, encrypt into storage",
                    time.perf_counter() - started,
                    None,
                )
            )
        checkpoint()
        rss_before = rss_mb()
        started = time.perf_counter()
        run = services.load_batch(batch_id=batch.pk, triggered_by="bench")
        loads.append(time.perf_counter() - started)
        peak = peak_rss_mb()
        batch.refresh_from_db()
        assert run is not None and batch.status == "loaded", batch.error
        assert batch.rows_total == options.rows, batch.rows_total
        if copy_file is None:
            copy_file = export_rows(batch.pk, batch.pk)
        bares.append(
            plain_copy(
                "public.bench_bare", f"CREATE TABLE public.bench_bare {TABLE_COLUMNS}", copy_file
            )
        )
        print(
            f"round {round_number}: load {loads[-1]:.1f} s, bare COPY {bares[-1]:.1f} s "
            f"({bares[-1] / loads[-1]:.0%}); peak RSS {peak:.0f} MB",
            flush=True,
        )
        if round_number < options.rounds:
            forget(dataset, [batch.pk])

    rounds = f"median of {options.rounds}" if options.rounds > 1 else "1 round"
    results.append(
        (
            f"load_batch: stored file -> committed raw records ({rounds})",
            statistics.median(loads),
            options.rows,
        )
    )

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
    bare = statistics.median(bares)
    results.append(
        (f"plain COPY: bare table, same columns, no index ({rounds})", bare, options.rows)
    )

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_indexes "
            "WHERE schemaname = 'explore' AND tablename = 'raw_record'"
        )
        indexes = f"{cursor.fetchone()[0]} indexes"
    like = "(LIKE explore.raw_record INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES"
    if not options.quick:
        unlogged = f"CREATE UNLOGGED TABLE public.bench_unlogged {TABLE_COLUMNS}"
        seconds = plain_copy("public.bench_unlogged", unlogged, copy_file)
        results.append(("plain COPY: bare UNLOGGED table", seconds, options.rows))
        indexed = f"CREATE TABLE public.bench_indexes {like})"
        seconds = plain_copy("public.bench_indexes", indexed, copy_file)
        results.append((f"plain COPY: a table with raw_record's {indexes}", seconds, options.rows))
    # The real table, as the load meets it: a second batch row so that line numbers are new.
    twin = LandingBatch.objects.get(pk=batch.pk)
    twin.pk, twin.key, twin.sha256 = None, uuid.uuid4(), "0" * 64
    twin.save()
    seconds = plain_copy("explore.raw_record", None, export_rows(batch.pk, twin.pk))
    results.append((f"plain COPY into explore.raw_record ({indexes})", seconds, options.rows))

    print()
    print(
        f"Ingestion benchmark: {options.rows:,} CSV rows, {size / 1e6:.1f} MB; "
        f"{os.cpu_count()} CPUs; PostgreSQL {connection.pg_version // 10000}"
    )
    print(f"{'step':<66}{'seconds':>9}{'rows/s':>11}{'vs bare COPY':>14}")
    for label, seconds, rows in results:
        rate = f"{rows / seconds:>11,.0f}" if rows else f"{'':>11}"
        ratio = f"{bare / seconds:>13.0%}" if rows else ""
        print(f"{label:<66}{seconds:>9.1f}{rate} {ratio}")
    pairs = ", ".join(f"{b / load:.0%}" for load, b in zip(loads, bares, strict=True))
    print(f"load vs bare COPY, round by round: {pairs}; goal: >= 60%")
    print(
        f"peak RSS (ru_maxrss) after the load: {peak:.0f} MB "
        f"(RSS before it: {rss_before:.0f} MB); goal: < 300 MB"
    )

    if not options.keep:
        forget(dataset, [batch.pk, twin.pk])
    for path in sorted(workdir.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    workdir.rmdir()


if __name__ == "__main__":
    main()
