"""Dashboard response times with a million rows per layer, against the 500 ms goal.

    .venv/bin/python bench/dashboards.py                   # seeds once, then times
    .venv/bin/python bench/dashboards.py --requests 50     # more requests per page
    .venv/bin/python bench/dashboards.py --fresh           # drop and seed the database again

Works in its own database (DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/atlas_bench_dashboards, created when missing and
migrated). The first run seeds it with set-based SQL (INSERT ... SELECT over
generate_series), shaped like a year of Atlas at work:
  10 datasets, 1,000 landed batches, 3,000 runs with their counters, scores and check
  results; explore: 1,000,000 raw records over 13 monthly partitions; chart: 950,000
  validated records, 50,000 quarantined ones with reasons, ~1,000,000 PII findings;
  navigate: 1,000,000 facts over two yearly partitions; 200,000 audit log entries;
  lineage, classifications, suggestions and retention policies.
It then summarises the runs (what a worker does as each run ends), runs ANALYZE (as
autovacuum would), and times every dashboard page (the home also with a search), the
admin's dataset list with its state columns (also filtered to stale datasets), a dataset's
page, and the quarantine review searched by a business key, through
Django's test Client as a logged-in compliance officer (who sees the most: audit activity
too), printing p50, p95 and the slowest request per page. Last, the alert evaluation
(orchestration.alerts.evaluate_alerts, the task beat runs every minute) with a rule of
every kind over every dataset: its time and its number of SQL queries, which depends on
the rules and datasets only, never on the rows.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas_site.settings.local")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/atlas_bench_dashboards")
# As in production: no query log kept per request.
os.environ.setdefault("DEBUG", "false")

GOAL_MS = 500
DATASETS = 10
BATCHES_PER_DATASET = 100
ROWS = 1_000_000
FACTS = 1_000_000
AUDIT_ENTRIES = 200_000
PAGES = [
    ("home (overview)", "/dashboards/"),
    ("home, a search", "/dashboards/?q=email"),
    ("admin dataset list", "/admin/pipeline/dataset/"),
    ("admin dataset list, stale", "/admin/pipeline/dataset/?state=stale"),
    # {dataset}: the id of bench-01 (time_pages); 20 is a quarantined record's key.
    ("admin dataset page", "/admin/pipeline/dataset/{dataset}/change/"),
    ("admin quarantine, a key search", "/admin/chart/quarantinedrecord/?q=20"),
    ("quality", "/dashboards/quality/"),
    ("compliance", "/dashboards/compliance/"),
    ("storage", "/dashboards/storage/"),
    ("lineage", "/dashboards/lineage/"),
    ("metrics (no goal)", "/metrics"),
]


def ensure_database(*, fresh: bool) -> None:
    """Create the benchmark database when it is missing (drop it first with --fresh)."""
    import psycopg

    parts = urlsplit(os.environ["DATABASE_URL"])
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def timed(label: str, function):
    started = time.perf_counter()
    result = function()
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)
    return result


def execute(*statements: str, params: dict | None = None) -> None:
    """Run each statement in turn; parameters are always bound, so SQL writes % as %%."""
    from django.db import connection

    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql, params or {})


def month_start(day: date, back: int) -> date:
    index = day.year * 12 + day.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


def make_partitions(today: date) -> None:
    """Partitions for the seeded history: 13 months (raw and chart records), 3 quarters
    (audit log) and last year (facts) behind today."""
    from django.db import connection

    from atlas_site.partitions import (
        AUDIT_LOG,
        CHART_RECORDS,
        FACTS,
        RAW_RECORDS,
        create_partition,
    )
    from governance.archive.services.upkeep import ensure_partitions

    ensure_partitions(today=today)
    with connection.cursor() as cursor:
        for back in range(13):
            create_partition(RAW_RECORDS, cursor, month_start(today, back))
            # Chart records are promoted as their raw records land: the same months.
            create_partition(CHART_RECORDS, cursor, month_start(today, back))
        for back in range(0, 9, 3):
            create_partition(AUDIT_LOG, cursor, month_start(today, back))
        create_partition(FACTS, cursor, date(today.year - 1, 1, 1))


def make_catalog(now: datetime):
    """Datasets with contracts, rules, metrics, lineage, a suggestion each, policies."""
    from governance.archive.models import RetentionPolicy
    from governance.compliance.models import (
        ClassificationLevel,
        ClassificationSuggestion,
        PiiPattern,
    )
    from governance.pipeline.models import Dataset, DatasetField, LineageEdge
    from governance.quality.models import QualityDimension, QualityRule
    from navigate.models import MetricDefinition

    levels = {level.name: level for level in ClassificationLevel.objects.all()}
    dimensions = {d.code: d for d in QualityDimension.objects.all()}
    contract = [
        ("id", "integer", None),
        ("email", "email", "confidential"),
        ("phone", "string", "confidential"),
        ("ssn", "string", "restricted"),
        ("tier", "enum", "public"),
        ("amount", "decimal", None),
        ("ordered_at", "datetime", None),
        ("notes", "string", None),
    ]
    rules = [
        ("id", "not_null", "completeness"),
        ("id", "type", "validity"),
        ("email", "pattern", "validity"),
        ("tier", "allowed_values", "accuracy"),
        ("amount", "range", "accuracy"),
        ("", "unique", "uniqueness"),
    ]
    transforms = {"email": "masked", "phone": "masked", "ssn": "encrypted"}
    datasets = []
    for number in range(1, DATASETS + 1):
        dataset = Dataset.objects.create(
            slug=f"bench-{number:02d}",
            name=f"Benchmark dataset {number}",
            business_key=["id"],
            quality_threshold="0.9500",
        )
        datasets.append(dataset)
        for position, (name, data_type, level) in enumerate(contract):
            DatasetField.objects.create(
                dataset=dataset,
                name=name,
                position=position,
                data_type=data_type,
                allowed_values=["gold", "silver"] if data_type == "enum" else [],
                classification=levels.get(level) if level else None,
            )
        for field_name, kind, dimension in rules:
            QualityRule.objects.create(
                dataset=dataset,
                field_name=field_name,
                kind=kind,
                dimension=dimensions[dimension],
                origin="contract",
            )
        metric = MetricDefinition.objects.create(
            slug=f"bench-{number:02d}-revenue",
            name="Revenue by day and tier",
            dataset=dataset,
            aggregation="sum",
            value_field="amount",
            time_field="ordered_at",
            dimension_fields=["tier"],
        )
        LineageEdge.objects.create(
            dataset=dataset,
            source_layer="explore",
            source_field="",
            target_layer="chart",
            target_name="",
            transform="typed",
        )
        for name, _, level in contract:
            if level:
                LineageEdge.objects.create(
                    dataset=dataset,
                    source_layer="explore",
                    source_field=name,
                    target_layer="chart",
                    target_name=name,
                    transform=transforms.get(name, "typed"),
                )
        for source_field, transform in (("", "aggregated"), ("amount", "aggregated")):
            LineageEdge.objects.create(
                dataset=dataset,
                source_layer="chart",
                source_field=source_field,
                target_layer="navigate",
                target_name=metric.slug,
                transform=transform,
            )
        LineageEdge.objects.create(
            dataset=dataset,
            source_layer="chart",
            source_field="tier",
            target_layer="navigate",
            target_name=metric.slug,
            transform="grouped",
        )
        notes = DatasetField.objects.get(dataset=dataset, name="notes")
        ClassificationSuggestion.objects.create(
            dataset_field=notes,
            suggested_level=levels["confidential"],
            pii_types=["email"],
            values_scanned=1000,
            values_with_pii=120,
            examples=["reach me at a***@example.com"],
            evidence_key="email@1",
        )
    RetentionPolicy.objects.create(layer="explore", keep_months=6)
    RetentionPolicy.objects.create(layer="navigate", keep_months=12)
    RetentionPolicy.objects.create(
        layer="compliance", keep_months=3, legal_hold=True, legal_hold_reason="audit 2026"
    )
    assert PiiPattern.objects.exists()
    return datasets


def _runs_sql(kind: str, offset: str, status: str, rows: str, error: str, column: str) -> str:
    """Insert one run per batch (`offset` after it lands) and note its id on the batch."""
    return f"""
        WITH made AS (
            INSERT INTO "pipeline"."run"
                   (dataset_id, kind, status, triggered_by, created_at, started_at,
                    finished_at, rows_in, rows_promoted, rows_quarantined, error, detail)
            SELECT dataset_id, '{kind}', {status}, 'benchmark', at + interval '{offset}',
                   at + interval '{offset}', at + interval '{offset}' + interval '1 minute',
                   {rows}, {error}, '{{}}'
              FROM bench_batch RETURNING id, created_at, dataset_id)
        UPDATE bench_batch b SET {column} = made.id FROM made
         WHERE made.created_at = b.at + interval '{offset}' AND made.dataset_id = b.dataset_id
    """


def seed(today: date) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from governance.compliance.roles import COMPLIANCE_OFFICER

    now = datetime.now(UTC)
    timed("partitions", lambda: make_partitions(today))
    datasets = timed("catalog", lambda: make_catalog(now))
    batches = DATASETS * BATCHES_PER_DATASET
    per_batch = ROWS // batches
    promoted, quarantined = per_batch * 95 // 100, per_batch * 5 // 100
    # One landed batch per ingest run, spread over the last 360 days; each batch's
    # chart and navigate runs follow it by one and four minutes.
    execute(
        """
        CREATE TEMP TABLE bench_batch AS
        SELECT n AS batch_no, (%(ids)s::bigint[])[1 + n %% %(datasets)s] AS dataset_id,
               %(now)s::timestamptz - interval '360 days'
                   + (n * interval '360 days') / %(batches)s AS at,
               null::bigint AS batch_id, null::bigint AS ingest_run,
               null::bigint AS chart_run, null::bigint AS navigate_run
          FROM generate_series(0, %(batches)s - 1) AS n
        """,
        params={
            "ids": [d.pk for d in datasets],
            "datasets": DATASETS,
            "now": now,
            "batches": batches,
        },
    )
    failed = "batch_no %% 97 = 5"  # about one chart run in a hundred failed
    timed(
        "landing batches and runs",
        lambda: execute(
            f"""
            WITH made AS (
                INSERT INTO "explore"."landing_batch"
                       (key, dataset_id, file, original_name, sha256, format, compression,
                        size_bytes, received_at, lines_total, rows_total, rows_parsed,
                        rows_failed, status, error, created_at, loaded_at)
                SELECT gen_random_uuid(), dataset_id, 'landing/bench/' || batch_no || '.csv',
                       batch_no || '.csv', md5(batch_no::text) || md5('x' || batch_no), 'csv',
                       'none', 150000, at, {per_batch} + 1, {per_batch}, {per_batch}, 0,
                       'loaded', '', at, at + interval '30 seconds'
                  FROM bench_batch RETURNING id, received_at, dataset_id)
            UPDATE bench_batch b SET batch_id = made.id FROM made
             WHERE made.received_at = b.at AND made.dataset_id = b.dataset_id
            """,
            _runs_sql(
                "ingest",
                "0 minutes",
                "'succeeded'",
                f"{per_batch}, {per_batch}, 0",
                "''",
                "ingest_run",
            ),
            _runs_sql(
                "promote_chart",
                "1 minute",
                f"CASE WHEN {failed} THEN 'failed' ELSE 'succeeded' END",
                f"{per_batch}, {promoted}, {quarantined}",
                f"CASE WHEN {failed} THEN 'OperationalError: server closed the connection' "
                "ELSE '' END",
                "chart_run",
            ),
            _runs_sql(
                "promote_navigate",
                "4 minutes",
                "'succeeded'",
                f"{promoted}, {promoted}, 0",
                "''",
                "navigate_run",
            ),
            "CREATE INDEX ON bench_batch (batch_no)",
            "CREATE INDEX ON bench_batch (batch_id)",
            "ANALYZE bench_batch",
        ),
    )
    timed(
        f"explore: {ROWS:,} raw records",
        lambda: execute(
            f"""
            INSERT INTO "explore"."raw_record"
                   (received_at, batch_id, dataset_id, line_number, payload, raw_text,
                    parse_error, payload_hash)
            SELECT b.at, b.batch_id, b.dataset_id, g %% {per_batch} + 1, p.payload,
                   p.payload::text, '', ''
              FROM generate_series(0, {ROWS} - 1) AS g
              JOIN bench_batch b ON b.batch_no = g / {per_batch}
             CROSS JOIN LATERAL (SELECT jsonb_build_object(
                   'id', g, 'email', 'user' || g || '@example.com',
                   'phone', '+44 20 7946 ' || lpad((g %% 10000)::text, 4, '0'),
                   'ssn', '123-45-' || lpad((g %% 10000)::text, 4, '0'),
                   'tier', CASE WHEN g %% 20 = 0 THEN 'bronze' WHEN g %% 2 = 0 THEN 'gold'
                                ELSE 'silver' END,
                   'amount', (g %% 100000) / 100.0, 'ordered_at', b.at,
                   'notes', 'call after five') AS payload) p
            """
        ),
    )
    timed(
        "chart: validated and quarantined records",
        lambda: execute(
            """
            INSERT INTO "chart"."chart_record"
                   (dataset_id, raw_record_id, business_key, data, extras, tokens, sealed,
                    protection_version, issues, is_current, run_id, created_at)
            SELECT r.dataset_id, r.id, r.payload->>'id',
                   r.payload || '{"ssn": "enc:v1:bench:AAAA"}', '{}',
                   '{"ssn": "tk:bench:AAAA"}', '{}', 2,  -- chart.models.TYPED_VALUES
                   '[]', true, b.chart_run, b.at + interval '2 minutes'
              FROM "explore"."raw_record" r
              JOIN bench_batch b ON b.batch_id = r.batch_id
             WHERE (r.payload->>'id')::bigint %% 20 <> 0
            """,
            """
            INSERT INTO "chart"."quarantined_record"
                   (dataset_id, raw_record_id, business_key, reasons, status, run_id,
                    resolution_note, created_at)
            SELECT r.dataset_id, r.id, r.payload->>'id',  -- the key, as chart.business_keys
                   jsonb_build_array(jsonb_build_object(
                       'field', 'tier', 'rule', 'allowed_values', 'value_excerpt', 'bronze',
                       'message', 'not one of gold, silver'))
                   || CASE WHEN (r.payload->>'id')::bigint %% 60 = 0 THEN jsonb_build_array(
                       jsonb_build_object('field', 'amount', 'rule', 'range',
                                          'value_excerpt', '-1', 'message', 'below 0'))
                      ELSE '[]'::jsonb END,
                   CASE WHEN (r.payload->>'id')::bigint %% 3 = 0 THEN 'open' ELSE 'dismissed' END,
                   b.chart_run, '', b.at + interval '2 minutes'
              FROM "explore"."raw_record" r
              JOIN bench_batch b ON b.batch_id = r.batch_id
             WHERE (r.payload->>'id')::bigint %% 20 = 0
            """,
        ),
    )
    timed(
        "chart: PII findings",
        lambda: execute(
            """
            INSERT INTO "chart"."pii_finding"
                   (dataset_id, raw_record_id, field_name, pii_type, confidence, masked_excerpt,
                    run_id, created_at)
            SELECT c.dataset_id, c.raw_record_id, f.field_name, f.pii_type, 0.90, '***',
                   c.run_id, c.created_at
              FROM "chart"."chart_record" c
             CROSS JOIN LATERAL (VALUES ('email', 'email'), ('phone', 'phone'),
                                        ('notes', 'email')) AS f (field_name, pii_type)
             WHERE (f.field_name = 'email' AND c.id %% 2 = 0)
                OR (f.field_name = 'phone' AND c.id %% 2 = 1)
                OR (f.field_name = 'notes' AND c.id %% 19 = 0)
            """
        ),
    )
    timed(
        "quality: scores and check results",
        lambda: execute(
            """
            INSERT INTO "quality"."score"
                   (run_id, dataset_id, overall, dimension_scores, weights_used,
                    below_threshold, created_at)
            SELECT b.chart_run, b.dataset_id, s.overall,
                   jsonb_build_object('completeness', 1.0, 'validity', s.overall,
                                      'accuracy', s.overall - 0.02, 'uniqueness', 1.0,
                                      'timeliness', null, 'consistency', null),
                   '{"completeness": 0.2, "validity": 0.2, "accuracy": 0.2,
                     "uniqueness": 0.1, "timeliness": 0.2, "consistency": 0.1}',
                   s.overall < 0.95, b.at + interval '3 minutes'
              FROM bench_batch b
             CROSS JOIN LATERAL (SELECT round((0.90 + (b.batch_no %% 10) / 100.0)::numeric, 4)
                                        AS overall) s
            """,
            """
            INSERT INTO "quality"."check_result"
                   (run_id, rule_id, passed_count, failed_count, failing_examples, created_at)
            SELECT b.chart_run, q.id,
                   CASE WHEN q.kind = 'allowed_values' THEN 950 ELSE 1000 END,
                   CASE WHEN q.kind = 'allowed_values' THEN 50 ELSE 0 END,
                   '[]', b.at + interval '3 minutes'
              FROM bench_batch b JOIN "quality"."rule" q ON q.dataset_id = b.dataset_id
            """,
        ),
    )
    timed(
        f"navigate: {FACTS:,} facts",
        lambda: execute(
            f"""
            INSERT INTO "navigate"."fact"
                   (period_start, metric_id, grain, dimensions, dimension_key, value,
                    record_count, computed_at)
            SELECT date '{today.year - 1}-01-01' + ((g / {DATASETS}) %% 700)::int,
                   m.ids[1 + g %% {DATASETS}], 'day',
                   jsonb_build_object('tier', 'tier-' || g / ({DATASETS} * 700)),
                   md5((g / ({DATASETS} * 700))::text), (g %% 9973) * 1.5, g %% 50 + 1, now()
              FROM generate_series(0, {FACTS} - 1) AS g,
                   (SELECT array_agg(id ORDER BY id) AS ids
                      FROM "navigate"."metric_definition") m
            """
        ),
    )

    # Back-dated entries: the trigger seal_entry stamps every new entry with the time it
    # is written, so they are written as the owner can (the trigger off, ids drawn here,
    # in one transaction), then chained as migration 0009 chained the entries before it.
    def audit_entries() -> None:
        from django.db import connection, transaction

        from governance.compliance import audit_chain

        with transaction.atomic():
            execute(
                'ALTER TABLE "compliance"."audit_log" DISABLE TRIGGER seal_entry',
                f"""
                INSERT INTO "compliance"."audit_log"
                       (id, at, actor, action, object_type, object_id, object_repr,
                        user_agent, detail)
                SELECT nextval('"compliance"."audit_log_id_seq"'),
                       %(now)s::timestamptz - (g * interval '1 minute'), 'celery', 'run',
                       'pipeline.run', g::text, 'run ' || g, '', 'benchmark entry'
                  FROM generate_series(1, {AUDIT_ENTRIES}) AS g
                """,
                'ALTER TABLE "compliance"."audit_log" ENABLE TRIGGER seal_entry',
                params={"now": now},
            )
            with connection.cursor() as cursor:
                audit_chain.rechain_all(cursor)

    timed(f"compliance: {AUDIT_ENTRIES:,} audit entries", audit_entries)
    # The benchmark logs in with force_login: no password at all.
    officer = get_user_model().objects.create_user("bench-officer", is_staff=True)
    officer.groups.add(Group.objects.get(name=COMPLIANCE_OFFICER))


def summarise() -> int:
    from dashboards.services import refresh_run_summaries

    total = 0
    while done := refresh_run_summaries():
        total += done
    return total


def analyze() -> None:
    for table in (
        '"explore"."raw_record"',
        '"chart"."chart_record"',
        '"chart"."quarantined_record"',
        '"chart"."pii_finding"',
        '"navigate"."fact"',
        '"compliance"."audit_log"',
        '"pipeline"."run"',
    ):
        execute(f"ANALYZE {table}")


def time_pages(requests: int) -> list[tuple[str, list[float], int]]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from governance.pipeline.models import Dataset

    client = Client(HTTP_HOST="localhost")
    client.force_login(get_user_model().objects.get(username="bench-officer"))
    dataset = Dataset.objects.get(slug="bench-01").pk
    results = []
    for name, page in PAGES:
        url = page.format(dataset=dataset)
        for _ in range(3):  # warm: connection, templates, the planner's caches
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        results.append((name, times, len(response.content)))
    return results


ALERT_GOAL_MS = 1000  # it runs every minute, beside everything else


def time_alerts(rounds: int) -> tuple[list[float], int, int, int]:
    """Times evaluate_alerts with one rule of every kind (made once, no channels):
    (milliseconds per round, queries in the last round, rules, alerts open)."""
    from datetime import timedelta
    from decimal import Decimal

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from governance.pipeline.models import Alert, AlertKind, AlertRule, AlertState
    from orchestration.alerts import evaluate_alerts

    for kind in AlertKind:
        AlertRule.objects.get_or_create(
            name=f"bench {kind.value}",
            defaults={
                "kind": kind,
                "threshold_percent": Decimal(1),
                "drop_points": Decimal(1),
                "wait_days": 1,
                "silent_minutes": 5,
                "repeat_interval": timedelta(hours=4),
            },
        )
    evaluate_alerts()  # warm; opens what holds
    times = []
    for _ in range(rounds):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            evaluate_alerts()
            times.append((time.perf_counter() - started) * 1000)
    rules = AlertRule.objects.filter(name__startswith="bench ").count()
    return times, len(queries), rules, Alert.objects.filter(state=AlertState.OPEN).count()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page")
    parser.add_argument("--fresh", action="store_true", help="drop and seed the database anew")
    args = parser.parse_args()
    ensure_database(fresh=args.fresh)

    import django

    django.setup()
    from django.core.management import call_command

    from governance.pipeline.models import Dataset

    call_command("migrate", verbosity=0)
    today = datetime.now(UTC).date()
    if not Dataset.objects.filter(slug__startswith="bench-").exists():
        print(f"Seeding {os.environ['DATABASE_URL']}", flush=True)
        timed("seeding, in all", lambda: seed(today))
        done = timed("summarising the ended runs", summarise)
        print(f"  ({done:,} runs summarised)")
        timed("ANALYZE", analyze)
    else:
        print("Seeded already (--fresh to seed again)")
        summarise()

    from dashboards.selectors.overview import layer_totals
    from dashboards.selectors.storage import archive_plan_key, next_to_archive

    layers = {t.label: t.rows_estimate for t in layer_totals()}
    print("\nRows per layer (estimates the pages show):")
    for label, rows in layers.items():
        print(f"  {label:<32}{rows:>12,}")

    from django.core.cache import cache

    today = datetime.now(UTC).date()
    cache.delete(archive_plan_key(today=today))
    started = time.perf_counter()
    plan = next_to_archive(today=today)
    cold_ms = (time.perf_counter() - started) * 1000
    print(
        f"\nRetention's plan ({len(plan)} partitions) computed cold in {cold_ms:.0f} ms; "
        "the Storage page reads it from the cache (warmed by workers as runs end)"
    )

    results = time_pages(args.requests)
    print(f"\n{args.requests} requests per page, logged in as a compliance officer")
    print(f"{'page':<28}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'KB':>8}  goal {GOAL_MS} ms")
    for name, times, size in results:
        p95 = percentile(times, 0.95)
        verdict = "" if "no goal" in name else ("ok" if p95 < GOAL_MS else "OVER")
        print(
            f"{name:<28}{statistics.median(times):>9.1f}{p95:>9.1f}{max(times):>9.1f}"
            f"{size / 1024:>8.0f}  {verdict}"
        )

    times, queries, rules, open_alerts = time_alerts(10)
    verdict = "ok" if percentile(times, 0.95) < ALERT_GOAL_MS else "OVER"
    print(
        f"\nAlert evaluation, {rules} rules (one of each kind) over {DATASETS} datasets, "
        f"{open_alerts} alerts open: p50 {statistics.median(times):.1f} ms, "
        f"max {max(times):.1f} ms, {queries} SQL queries  goal {ALERT_GOAL_MS} ms: {verdict}"
    )


if __name__ == "__main__":
    main()
