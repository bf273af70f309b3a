"""Archive benchmark: one month of raw records archived (export, read back, drop) and restored.

Fills a past month's partition of explore.raw_record with generated records (in SQL),
then times what the retention run does with it (governance.archive.services.retention: COPY
out through gzip and envelope encryption into object storage, the object read back,
decrypted and checked, the manifest written, the partition detached and dropped) and
the restore (the object streamed through decryption and gzip into COPY, checked
against the manifest). A plain `COPY ... TO STDOUT` of the same partition, discarded,
is the limit. Peak memory is the process's peak resident set (ru_maxrss): the rows are
made in SQL, so it is the archive's and the restore's own peak.

It runs against a database of its own (DATABASE_URL, default atlas_bench), created if
missing and migrated first, with object storage in a temporary folder:

    .venv/bin/python bench/archive.py               # 1,000,000 rows
    .venv/bin/python bench/archive.py --rows 100000
"""

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MONTH = date(2001, 1, 1)  # a month no real data uses


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="atlas-bench-archive-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas_site.settings.local")
    os.environ["DEBUG"] = "0"
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    import django

    from bench import database

    database.prepare()
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from atlas_site.partitions import RAW_RECORDS, create_partition
    from governance.archive.models import ArchivedPartition, RetentionPolicy
    from governance.archive.services.restore import restore_archived
    from governance.archive.services.retention import apply_retention
    from governance.pipeline.models import Dataset, RunKind, RunStatus
    from governance.pipeline.services import create_run

    call_command("migrate", verbosity=0)
    rows = options.rows
    dataset, _ = Dataset.objects.get_or_create(
        slug="bench-archive", defaults={"name": "Archive benchmark", "business_key": ["id"]}
    )
    partition = RAW_RECORDS.partition_name(MONTH)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE IF EXISTS "explore"."{partition}"')
            create_partition(RAW_RECORDS, cursor, MONTH)
            started = time.perf_counter()
            cursor.execute(
                """
                INSERT INTO "explore"."raw_record"
                    (received_at, batch_id, dataset_id, line_number, payload, raw_text,
                     parse_error, payload_hash)
                SELECT %s::timestamptz + n * interval '1 second', 1, %s, n,
                       jsonb_build_object('id', n, 'email', 'user' || n || '@example.com',
                                          'amount', (n %% 997) || '.25', 'tier', 'gold',
                                          'note', 'said "hello, world" ' || md5(n::text)),
                       '', '', md5(n::text) || md5((n + 1)::text)
                  FROM generate_series(1, %s) n
                """,
                [f"{MONTH.isoformat()} 00:00:00+00", dataset.pk, rows],
            )
            cursor.execute(f'ANALYZE "explore"."{partition}"')
            cursor.execute(f'SELECT pg_total_relation_size(\'"explore"."{partition}"\')')
            table_bytes = cursor.fetchone()[0]
        print(
            f"made {rows:,} rows ({table_bytes / 1e6:.0f} MB) in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )

        with connection.cursor() as cursor:
            started = time.perf_counter()
            with cursor.copy(
                f'COPY "explore"."{partition}" TO STDOUT (FORMAT csv, HEADER)'
            ) as copy:
                for _block in copy:
                    pass
            plain_copy = time.perf_counter() - started

        RetentionPolicy.objects.filter(dataset=dataset).delete()
        RetentionPolicy.objects.create(layer="explore", dataset=dataset, keep_months=12)
        run = create_run(dataset=None, kind=RunKind.ARCHIVE, triggered_by="bench")
        started = time.perf_counter()
        run = apply_retention(run=run)
        archive_seconds = time.perf_counter() - started
        archive_peak = peak_rss_mb()
        if run.status != RunStatus.SUCCEEDED:
            raise SystemExit(f"the archive run failed: {run.error}")
        manifest = ArchivedPartition.objects.get(run=run)

        started = time.perf_counter()
        restore_archived(manifest=manifest, actor="bench")
        restore_seconds = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT count(*) FROM "explore"."{partition}"')
            restored = cursor.fetchone()[0]

        print()
        print(f"{'step':<44}{'seconds':>9}{'rows/s':>12}")
        print(
            f"{'plain COPY TO STDOUT (discarded), the limit':<44}{plain_copy:>9.1f}"
            f"{rows / plain_copy:>12,.0f}"
        )
        print(
            f"{'archive: export + gzip + encrypt + store + read back + drop':<44}"
            f"{archive_seconds:>9.1f}{rows / archive_seconds:>12,.0f}"
        )
        print(
            f"{'restore: read + decrypt + gunzip + COPY in + check':<44}{restore_seconds:>9.1f}"
            f"{rows / restore_seconds:>12,.0f}"
        )
        print()
        print(
            f"object: {manifest.byte_size / 1e6:.1f} MB (gzip, encrypted) for "
            f"{table_bytes / 1e6:.0f} MB of table; {manifest.row_count:,} rows archived, "
            f"{restored:,} restored"
        )
        print(f"archive at {plain_copy / archive_seconds:.0%} of the plain COPY's rate")
        print(
            f"peak RSS {archive_peak:.0f} MB after the archive, "
            f"{peak_rss_mb():.0f} MB after the restore"
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE IF EXISTS "explore"."{partition}"')
        ArchivedPartition.objects.filter(partition_name=partition).delete()
        RetentionPolicy.objects.filter(dataset=dataset).delete()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
