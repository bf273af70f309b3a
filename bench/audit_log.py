"""Audit log benchmark: what sealing each entry (the trigger `seal_entry`) costs an insert.

Times N inserts (default 10,000) into compliance.audit_log, each way without the
trigger (the INSERT draws the id itself, as the identity column did before migration
0009; no hashes, no lock) and once with it (`at` set, the quarter's advisory lock until
commit, the previous entry read, the id drawn, both sha256 computed):

- one transaction per entry, one connection (autocommit INSERTs);
- all N entries in one transaction;
- `record_audit()` through the ORM, one transaction each (what the application does);
- 8 connections appending at once, one transaction per entry (the quarter's lock makes
  them take turns).

Rounds alternate without and with the trigger, and each figure is the median of its
rounds. The entries written without the trigger are dated a century back, into a
partition of their own; this quarter's chain, every entry of it written by the trigger
(8 connections at once included), is verified at the end.

It runs against a database of its own (DATABASE_URL, default atlas_bench), created if
missing and migrated first:

    .venv/bin/python bench/audit_log.py
    .venv/bin/python bench/audit_log.py --entries 2000
"""

import argparse
import os
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WRITERS = 8
COLUMNS = "actor, action, object_type, object_id, object_repr, user_agent, detail, after"
VALUES = "'bench', 'run', 'pipeline.run', %s, 'run 1', 'bench', 'benchmark entry', %s"
INSERT = f'INSERT INTO "compliance"."audit_log" ({COLUMNS}) VALUES ({VALUES})'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    entries = options.entries - options.entries % WRITERS

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas_site.settings.local")
    os.environ["DEBUG"] = "0"
    import django

    from bench import database

    url = database.prepare()
    django.setup()
    import psycopg
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from psycopg.types.json import Jsonb

    from atlas_site.partitions import AUDIT_LOG, create_partition
    from governance.compliance import audit_chain
    from governance.compliance.models import AuditAction
    from governance.compliance.services import record_audit

    call_command("migrate", verbosity=0)

    def params(n: int) -> list:
        return [str(n), Jsonb({"status": "succeeded", "rows_in": n, "rows_promoted": n})]

    def one_per_transaction() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for n in range(entries):
                conn.execute(INSERT, params(n))

    def one_transaction() -> None:
        with psycopg.connect(url) as conn, conn.transaction():
            for n in range(entries):
                conn.execute(INSERT, params(n))

    def through_the_orm() -> None:
        for n in range(entries):
            record_audit(
                actor="bench",
                action=AuditAction.RUN,
                object_type="pipeline.run",
                object_id=str(n),
                object_repr="run 1",
                after={"status": "succeeded", "rows_in": n, "rows_promoted": n},
                detail="benchmark entry",
            )

    def concurrent() -> None:
        start = threading.Barrier(WRITERS)
        errors = []

        def write() -> None:
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    start.wait()
                    for n in range(entries // WRITERS):
                        conn.execute(INSERT, params(n))
            except Exception as error:
                errors.append(error)

        threads = [threading.Thread(target=write) for _ in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    cases = [
        ("one transaction per entry", one_per_transaction),
        ("all in one transaction", one_transaction),
        ("record_audit(), one transaction each", through_the_orm),
        (f"{WRITERS} connections at once, one each", concurrent),
    ]

    def timed(run) -> float:
        started = time.perf_counter()
        run()
        return time.perf_counter() - started

    @contextmanager
    def unsealed():
        """The table as before migration 0009: ids drawn by a default, no trigger. These
        entries are dated 100 years back, into a partition of their own, so that the
        chain of this quarter is not broken by them."""
        with connection.cursor() as cursor:
            cursor.execute(
                'ALTER TABLE "compliance"."audit_log" DISABLE TRIGGER seal_entry; '
                'ALTER TABLE "compliance"."audit_log" ALTER COLUMN id '
                'SET DEFAULT nextval(\'"compliance"."audit_log_id_seq"\'); '
                'ALTER TABLE "compliance"."audit_log" ALTER COLUMN at '
                "SET DEFAULT statement_timestamp() - interval '100 years'"
            )
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute(
                    'ALTER TABLE "compliance"."audit_log" ALTER COLUMN id DROP DEFAULT; '
                    'ALTER TABLE "compliance"."audit_log" ALTER COLUMN at '
                    "SET DEFAULT statement_timestamp(); "
                    'ALTER TABLE "compliance"."audit_log" ENABLE TRIGGER seal_entry'
                )

    today = timezone.now().date()
    with connection.cursor() as cursor:
        create_partition(AUDIT_LOG, cursor, today.replace(year=today.year - 100))
    # Rounds alternate without and with the trigger; each figure is the median of its
    # rounds (other work on the machine moves single runs a lot).
    without, with_ = defaultdict(list), defaultdict(list)
    for round_number in range(1, options.rounds + 1):
        for label, run in cases:
            with unsealed():
                without[label].append(timed(run))
            with_[label].append(timed(run))
            print(
                f"round {round_number}: {label}: {without[label][-1]:.2f} s without, "
                f"{with_[label][-1]:.2f} s with the trigger",
                flush=True,
            )

    results = audit_chain.verify(quarter=AUDIT_LOG.period_start(today))
    broken = [r for r in results if r.broken is not None]
    total = sum(r.entries for r in results)

    print()
    print(f"{entries:,} inserts into compliance.audit_log (median of {options.rounds} rounds)")
    print(f"{'case':<40}{'without':>10}{'with':>10}{'µs/entry':>20}{'ratio':>8}")
    for label, _run in cases:
        before, after = median(without[label]), median(with_[label])
        per_entry = f"{before / entries * 1e6:.0f} → {after / entries * 1e6:.0f}"
        print(f"{label:<40}{before:>9.2f}s{after:>9.2f}s{per_entry:>20}{after / before:>7.2f}x")
    print()
    print(f"this quarter verified: {total:,} entries, {len(broken)} partitions broken")
    if broken:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
