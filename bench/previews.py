"""The admin's previews and long lists on tables with millions of rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/atlas_bench .venv/bin/python bench/previews.py
    .venv/bin/python bench/previews.py --rows 200000     # a quicker run

Seeds (once per size; a later run reuses the rows) a dataset with N raw records and as
many chart records, N/10 quarantined records, and D datasets with S quality scores
each, then times, each the median of three calls:
  1. the PII pattern impact preview (`preview_pattern_impact`) of an edited SSN
     pattern, against its limit of 2 s;
  2. the quality weights preview (`preview_weights`), against 2 s;
  3. a page of the raw records list filtered by dataset, by batch and by a month's
     range, through the admin itself, against 1 s, with the partitions each plan reads.
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas_site.settings.local")
import django

from bench import database

database.prepare()
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from atlas_site.partitions import RAW_RECORDS, existing_partitions  # noqa: E402
from chart.models import ChartRecord, QuarantinedRecord  # noqa: E402
from chart.selectors import impact_sample  # noqa: E402
from explore.models import LandingBatch, RawRecord  # noqa: E402
from governance.compliance.impact import preview_pattern_impact  # noqa: E402
from governance.compliance.models import PiiPattern  # noqa: E402
from governance.pipeline.models import Dataset, Run  # noqa: E402
from governance.quality.models import QualityScore  # noqa: E402
from governance.quality.scoring import current_weights  # noqa: E402
from governance.quality.services import preview_weights  # noqa: E402

LIMIT_PREVIEW_S = 2.0
LIMIT_PAGE_S = 1.0


def median_seconds(call, repeat: int = 3) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def seed_records(rows: int) -> tuple[Dataset, LandingBatch]:
    slug = f"bench-previews-{rows}"
    dataset, created = Dataset.objects.get_or_create(slug=slug, defaults={"name": slug})
    batch = LandingBatch.objects.filter(dataset=dataset).first()
    if batch is not None and not created:
        return dataset, batch
    print(f"seeding {rows:,} raw and chart records, {rows // 10:,} quarantined…", flush=True)
    now = timezone.now()
    batch = LandingBatch.objects.create(
        key=uuid.uuid4(),
        dataset=dataset,
        original_name=f"{slug}.jsonl",
        sha256=uuid.uuid4().hex * 2,
        format="jsonl",
        received_at=now,
        status="loaded",
        rows_total=rows,
    )
    run = Run.objects.create(dataset=dataset, kind="promote_chart", triggered_by="bench")
    with transaction.atomic(), connection.cursor() as cursor:
        # Values like the promotion benchmark's: an email, an SSN, a phone number and
        # free text, some of it holding an SSN written with spaces.
        cursor.execute(
            """
            INSERT INTO explore.raw_record
                   (received_at, batch_id, dataset_id, line_number, payload, raw_text,
                    parse_error, payload_hash)
            SELECT %s, %s, %s, i, p, p::text, '', ''
              FROM generate_series(1, %s) AS i,
                   LATERAL (SELECT jsonb_build_object(
                       'id', i::text,
                       'email', 'user' || i || '@example.com',
                       'ssn', format('%%s-%%s-%%s', 100 + i %% 500, 10 + i %% 89, 1000 + i %% 8999),
                       'phone', '+44 20 7946 ' || lpad((i %% 10000)::text, 4, '0'),
                       'notes', CASE WHEN i %% 20 = 0
                                     THEN format('ssn %%s %%s %%s', 100 + i %% 500, 10 + i %% 89,
                                                 1000 + i %% 8999)
                                     ELSE 'please deliver after five, ring twice' END
                   ) AS p) AS payload
            """,
            [now, batch.pk, dataset.pk, rows],
        )
        cursor.execute(  # the batch's raw id range, as a load records it
            "UPDATE explore.landing_batch SET (first_raw_id, last_raw_id) = "
            "(SELECT min(id), max(id) FROM explore.raw_record WHERE batch_id = %s) WHERE id = %s",
            [batch.pk, batch.pk],
        )
        cursor.execute(
            """
            INSERT INTO chart.chart_record
                   (dataset_id, raw_record_id, business_key, data, extras, issues, is_current,
                    run_id, created_at)
            SELECT dataset_id, id, line_number::text, payload, '{}', '[]', true, %s, now()
              FROM explore.raw_record WHERE batch_id = %s AND line_number %% 10 <> 0
            """,
            [run.pk, batch.pk],
        )
    quarantined = RawRecord.objects.filter(batch=batch, line_number__endswith="0").values_list(
        "id", flat=True
    )
    pending = []
    for raw_id in quarantined.iterator(chunk_size=10_000):
        pending.append(
            QuarantinedRecord(
                dataset=dataset,
                raw_record_id=raw_id,
                reasons=[{"field": "tier", "rule": "allowed_values", "message": "bench"}],
                run=run,
            )
        )
        if len(pending) == 10_000:
            QuarantinedRecord.objects.bulk_create(pending)
            pending = []
    QuarantinedRecord.objects.bulk_create(pending)
    return dataset, batch


def seed_scores(datasets: int, per_dataset: int) -> None:
    prefix = f"bench-scores-{per_dataset}-"
    if Dataset.objects.filter(slug__startswith=prefix).count() >= datasets:
        return
    print(f"seeding {datasets} datasets with {per_dataset} quality scores each…", flush=True)
    weights = {code: str(weight) for code, weight in current_weights().items()}
    for number in range(datasets):
        dataset = Dataset.objects.create(slug=f"{prefix}{number}", name=f"Scores {number}")
        runs = Run.objects.bulk_create(
            Run(dataset=dataset, kind="promote_chart", status="succeeded", triggered_by="bench")
            for _ in range(per_dataset)
        )
        QualityScore.objects.bulk_create(
            QualityScore(
                run=run,
                dataset=dataset,
                overall=Decimal("0.9"),
                dimension_scores={
                    code: f"0.{(index * 7 + n) % 10}" for n, code in enumerate(weights)
                },
                weights_used=weights,
            )
            for index, run in enumerate(runs)
        )


def analyse() -> None:
    with connection.cursor() as cursor:
        for table in (
            "explore.raw_record",
            "chart.chart_record",
            "chart.quarantined_record",
            "quality.score",
        ):
            cursor.execute(f"ANALYZE {table}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--scores", type=int, default=500)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    call_command("ensure_partitions", verbosity=0)
    dataset, batch = seed_records(args.rows)
    seed_scores(args.datasets, args.scores)
    analyse()
    print(
        f"tables: raw {RawRecord.objects.count():,}, chart {ChartRecord.objects.count():,}, "
        f"quarantined {QuarantinedRecord.objects.count():,}, "
        f"quality scores {QualityScore.objects.count():,} over "
        f"{Dataset.objects.count():,} datasets"
    )

    saved = PiiPattern.objects.get(name="US Social Security number")
    edited = PiiPattern.objects.get(pk=saved.pk)
    edited.regex = r"\b\d{3}[ -]\d{2}[ -]\d{4}\b"
    result = preview_pattern_impact(candidate=edited, saved=saved, sample=impact_sample())
    impact_s = median_seconds(
        lambda: preview_pattern_impact(candidate=edited, saved=saved, sample=impact_sample())
    )
    sample = result["sample"]
    print(
        f"PII impact preview: {impact_s:.3f} s (limit {LIMIT_PREVIEW_S} s) for "
        f"{sample['chart_records']:,} chart + {sample['quarantined_records']:,} quarantined "
        f"records, {sample['values_scanned']:,} values; totals {result['totals']}"
    )

    weights = {**current_weights(), "validity": Decimal("0.05"), "completeness": Decimal("0.45")}
    scored = len(preview_weights(weights=weights))
    weights_s = median_seconds(lambda: preview_weights(weights=weights))
    print(
        f"weights preview: {weights_s:.3f} s (limit {LIMIT_PREVIEW_S} s) for {scored} "
        f"datasets' latest of {QualityScore.objects.count():,} scores"
    )

    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="bench-previews", defaults={"is_staff": True, "is_superuser": True}
    )
    setup_test_environment()  # responses then carry their template context (the changelist)
    client = Client(HTTP_HOST="127.0.0.1")  # an address the local settings allow
    client.force_login(user)
    month = timezone.localdate().replace(day=1)
    next_month = RAW_RECORDS.shift(month, 1)
    pages = {
        "by dataset": {"dataset__id__exact": dataset.pk},
        "by batch": {"batch": batch.pk},
        "by month": {"received_at__gte": str(month), "received_at__lt": str(next_month)},
    }
    partitions = existing_partitions(RAW_RECORDS)
    for label, params in pages.items():
        response = client.get("/admin/explore/rawrecord/", params)
        assert response.status_code == 200, response.status_code
        plan = response.context["cl"].queryset.explain()
        read = sorted(name for name in partitions if name in plan)
        page_s = median_seconds(lambda p=params: client.get("/admin/explore/rawrecord/", p))
        print(
            f"raw records page {label}: {page_s:.3f} s (limit {LIMIT_PAGE_S} s), "
            f"partitions read: {', '.join(read)} of {len(partitions)}"
        )


if __name__ == "__main__":
    main()
