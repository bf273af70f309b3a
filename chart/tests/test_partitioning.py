"""chart_record partitioned by month of promotion: the migration that converts it in place
(forward and back, with rows), what lands where, lookups by id, upkeep."""

from datetime import UTC, date, datetime

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from atlas_site.partitions import CHART_RECORDS, existing_partitions, move_default_rows
from chart.models import ChartRecord, PiiFinding
from chart.services import promote_to_chart
from governance.archive.services.upkeep import ensure_partitions
from governance.pipeline.models import RunStatus
from orchestration.alerts import platform_figures

BEFORE, CONVERTING = (
    "0009_chart_record_keys_without_db_constraints",
    "0010_chart_record_partitioned",
)
MONTHS = (datetime(2025, 3, 31, 23, 30, tzinfo=UTC), datetime(2026, 2, 1, 0, 0, tzinfo=UTC))


TABLE = CHART_RECORDS.sql_name


def relkind() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE])
        return cursor.fetchone()[0]


def every_row() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, business_key, data, extras, is_current, created_at, dataset_id, "
            "raw_record_id, run_id, superseded_by_id, issues, protection_version, sealed, "
            f"tokens FROM {TABLE} ORDER BY id"
        )
        return cursor.fetchall()


def constraints_into_chart() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT conname FROM pg_constraint WHERE confrelid = %s::regclass", [TABLE])
        return {row[0] for row in cursor.fetchall()}


def seed_plain_table(dataset, run) -> list[int]:
    """Records promoted in two past months and now, one superseding another, with a PII
    finding; written as the plain table takes them."""
    now = timezone.now()
    ids = []
    with connection.cursor() as cursor:
        for n, created in enumerate([*MONTHS, now, now]):
            cursor.execute(
                f"""
                INSERT INTO {TABLE} (business_key, data, extras, is_current, created_at,
                    dataset_id, raw_record_id, run_id, issues, protection_version, sealed,
                    tokens)
                VALUES (%s, %s, '{{}}', true, %s, %s, %s, %s, '[]', 2, '{{}}', %s)
                RETURNING id
                """,
                [
                    str(n % 3),
                    f'{{"n": {n}, "text": "quote \\" comma ,"}}',
                    created,
                    dataset.pk,
                    1000 + n,
                    run.pk,
                    f'{{"ssn": "token-{n}"}}',
                ],
            )
            ids.append(cursor.fetchone()[0])
        # The last record's key arrived before (the first one): that one is superseded.
        cursor.execute(
            f"UPDATE {TABLE} SET is_current = false, superseded_by_id = %s WHERE id = %s",
            [ids[3], ids[0]],
        )
    PiiFinding.objects.create(
        dataset=dataset,
        raw_record_id=1000,
        chart_record_id=ids[0],
        field_name="notes",
        pii_type="email",
        confidence="0.90",
        masked_excerpt="a***@example.com",
        run=run,
    )
    return ids


@pytest.mark.django_db(transaction=True)
def test_the_migration_converts_rows_in_place_and_back(dataset):
    from governance.pipeline.models import RunKind
    from governance.pipeline.services import create_run

    run = create_run(dataset=dataset, kind=RunKind.PROMOTE_CHART, triggered_by="test")
    call_command("migrate", "chart", BEFORE, interactive=False, verbosity=0)
    try:
        assert relkind() == "r"
        ids = seed_plain_table(dataset, run)
        before = every_row()
        assert len(before) == 4
        with connection.cursor() as cursor:
            # An id reserved by a promotion that then rolled back is never given again.
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [TABLE, ids[-1] + 50]
            )

        call_command("migrate", "chart", CONVERTING, interactive=False, verbosity=0)

        assert relkind() == "p"
        assert every_row() == before
        partitions = existing_partitions(CHART_RECORDS)
        assert partitions["chart_record_default"] == "DEFAULT"
        # 2025-03-31 23:30 UTC is March's, whatever the session's time zone.
        for month in ("chart_record_2025_03", "chart_record_2026_02"):
            assert month in partitions
        with connection.cursor() as cursor:
            cursor.execute('SELECT count(*) FROM "chart"."chart_record_2025_03"')
            assert cursor.fetchone()[0] == 1
            cursor.execute('SELECT count(*) FROM "chart"."chart_record_default"')
            assert cursor.fetchone()[0] == 0
            cursor.execute(
                "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass",
                [TABLE],
            )
            indexes = " ".join(row[0] for row in cursor.fetchall())
        assert "(id, created_at)" in indexes
        assert "(dataset_id, raw_record_id)" in indexes
        assert "WHERE (protection_version = 1)" in indexes
        assert constraints_into_chart() == set()
        # The ORM sees a normal model: ids, the successor, the finding's record.
        old = ChartRecord.objects.get(pk=ids[0])
        assert old.superseded_by_id == ids[3] and not old.is_current
        assert PiiFinding.objects.get(chart_record_id=ids[0]).chart_record == old
        made = ChartRecord.objects.create(
            dataset=dataset, raw_record_id=2000, data={}, run=run, business_key="9"
        )
        assert made.pk == ids[-1] + 51

        call_command("migrate", "chart", BEFORE, interactive=False, verbosity=0)

        assert relkind() == "r"
        assert every_row()[:4] == before
        assert len(every_row()) == 5
        assert constraints_into_chart() == {
            "pii_finding_chart_record_id_7a561db4_fk_chart_record_id",
            "quarantined_record_chart_record_id_ca8fa969_fk_chart_record_id",
        }
        assert (
            ChartRecord.objects.create(
                dataset=dataset, raw_record_id=2001, data={}, run=run, business_key="8"
            ).pk
            == made.pk + 1
        )
    finally:
        call_command("migrate", "chart", interactive=False, verbosity=0)
    assert relkind() == "p"
    assert len(every_row()) == 6


@pytest.mark.django_db
def test_a_promotion_lands_in_the_month_it_ran(customers, land):
    land(customers, [{"id": "1", "email": "ada@example.com", "tier": "gold", "amount": "1"}])
    run = promote_to_chart(dataset=customers, triggered_by="test")
    assert run.status == RunStatus.SUCCEEDED, run.error
    record = ChartRecord.objects.get(dataset=customers)
    month = CHART_RECORDS.partition_name(CHART_RECORDS.period_start(timezone.now().date()))
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT id FROM "chart"."{month}"')
        assert cursor.fetchall() == [(record.pk,)]


@pytest.mark.django_db
def test_a_lookup_by_id_reads_each_partitions_primary_key(db):
    # The partitions here are nearly empty, and a scan beats any index on them.
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = ChartRecord.objects.filter(pk=123).explain()
    assert "Seq Scan" not in plan, plan
    month = CHART_RECORDS.partition_name(CHART_RECORDS.period_start(timezone.now().date()))
    assert f"{month}_pkey" in plan, plan
    assert "chart_record_default_pkey" in plan, plan


@pytest.mark.django_db
def test_records_in_default_get_their_month(dataset):
    from governance.pipeline.models import RunKind
    from governance.pipeline.services import create_run

    run = create_run(dataset=dataset, kind=RunKind.PROMOTE_CHART, triggered_by="test")
    far = datetime(2041, 5, 6, tzinfo=UTC)
    record = ChartRecord.objects.create(dataset=dataset, raw_record_id=1, data={}, run=run)
    ChartRecord.objects.filter(pk=record.pk).update(created_at=far)  # moves it to DEFAULT
    with connection.cursor() as cursor:
        cursor.execute('SELECT id FROM "chart"."chart_record_default"')
        assert cursor.fetchall() == [(record.pk,)]
    # The platform's alert on rows sitting in a DEFAULT partition sees it.
    figures = platform_figures(timezone.now())
    assert figures.default_rows == {"chart.chart_record_default": 1}

    reports = {report.table: report for report in ensure_partitions(today=date(2041, 5, 6))}

    assert reports["chart.chart_record"].moved == {"chart_record_2041_05": 1}
    assert reports["chart.chart_record"].rows_in_default == 0
    assert ChartRecord.objects.get(pk=record.pk).created_at == far
    with connection.cursor() as cursor:
        assert move_default_rows(CHART_RECORDS, cursor) == {}
