"""Writes of the navigate layer: metric definitions checked, facts computed from chart.

Facts are aggregated in PostgreSQL with one INSERT ... SELECT ... ON CONFLICT statement
per metric, recomputing only the periods a run touched, so re-running a promotion
leaves the same facts behind.

How chart values become SQL values (see chart/contract.py for how they are stored):
integers are JSON numbers and decimals JSON strings, both read as `numeric`; dates are
"YYYY-MM-DD"; datetimes are ISO 8601 in UTC, converted to UTC explicitly so that a
period is a UTC day whatever the session's time zone. Fact.value is numeric, so the
minimum or maximum of a date or datetime is stored as seconds since the Unix epoch
(UTC); `navigate.selectors.decode_fact_value` turns it back.
"""

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max

from atlas_site.outages import DATABASE_OUTAGE_ERRORS
from atlas_site.schemas import sql_table
from chart.models import ChartRecord
from governance.compliance.tokens import TokenKeyring
from governance.pipeline.models import (
    Dataset,
    FieldType,
    Layer,
    LineageEdge,
    Run,
    RunKind,
    RunStatus,
    Transform,
    Watermark,
)
from governance.pipeline.services import (
    create_run,
    finish_run,
    promotion_of,
)
from navigate.definitions import (
    TIME_TYPES,
    Aggregation,
    contract_fields,
    validate_metric_definition,
)
from navigate.models import Fact, MetricDefinition

logger = logging.getLogger(__name__)

CHART_RECORD = sql_table(ChartRecord)
FACT = sql_table(Fact)


# --- SQL pieces -----------------------------------------------------------------------
# Field names go to PostgreSQL as parameters (data ->> %(name)s), never into the SQL text.

# A fact's dimension_key is its upsert key: a keyed HMAC of its dimensions' jsonb text
# (canonical: jsonb orders keys itself), not an unkeyed digest, which anyone shown it
# could match against digests of guessed values. Computed in the statement, per group.
DIMENSION_KEY_PURPOSE = "navigate.fact.dimension_key"


def _dimension_key_sql(dimensions: str) -> str:
    return (
        "encode(sha256(%(key_outer)s::bytea || sha256(%(key_inner)s::bytea || "
        f"convert_to(({dimensions})::text, 'UTF8'))), 'hex')"
    )


def dimension_key_params() -> dict[str, bytes]:
    inner, outer = TokenKeyring.from_settings().sql_hmac_pads(DIMENSION_KEY_PURPOSE)
    return {"key_inner": inner, "key_outer": outer}


def _time_sql(data_type: str, param: str) -> str:
    """A record's time as a UTC `timestamp` (without zone)."""
    if data_type == FieldType.DATETIME:
        return f"((data ->> %({param})s::text)::timestamptz AT TIME ZONE 'UTC')"
    return f"((data ->> %({param})s::text)::date::timestamp)"


def _period_sql(data_type: str) -> str:
    # date_trunc('week') starts weeks on Monday, as ISO weeks do.
    return f"date_trunc(%(grain)s::text, {_time_sql(data_type, 'time_field')})::date"


def _value_sql(aggregation: str, data_type: str | None) -> str:
    if aggregation == Aggregation.COUNT:
        return "NULL"
    if aggregation == Aggregation.DISTINCT_COUNT:
        # A keyed token where chart keeps one (encrypted or tagged values, unique fields):
        # equal values have equal tokens, and a token never equals a plain value.
        return "coalesce(tokens ->> %(value_field)s::text, data ->> %(value_field)s::text)"
    if data_type in TIME_TYPES:
        return f"extract(epoch FROM {_time_sql(data_type, 'value_field')})"
    return "(data ->> %(value_field)s::text)::numeric"


def _aggregate_sql(aggregation: str) -> str:
    aggregates: dict[str, str] = {
        Aggregation.COUNT: "count(*)",
        Aggregation.SUM: "sum(value)",
        Aggregation.AVG: "avg(value)",
        Aggregation.MIN: "min(value)",
        Aggregation.MAX: "max(value)",
        Aggregation.DISTINCT_COUNT: "count(DISTINCT value)",
    }
    return aggregates[aggregation]


def _dimensions_sql(dimension_fields: list[str]) -> tuple[str, str, str, dict[str, Any]]:
    """The dimension values as source columns, their GROUP BY list, the jsonb built from
    them once per group (typed, JSON null when absent), and the parameters."""
    if not dimension_fields:
        return "", "", "'{}'::jsonb", {}
    columns: list[str] = []
    names: list[str] = []
    pairs: list[str] = []
    params: dict[str, Any] = {}
    for position, name in enumerate(dimension_fields):
        params[f"dimension_{position}"] = name
        columns.append(f", data -> %(dimension_{position})s::text AS dimension_{position}")
        names.append(f", dimension_{position}")
        pairs.append(f"%(dimension_{position})s::text, dimension_{position}")
    return "".join(columns), "".join(names), f"jsonb_build_object({', '.join(pairs)})", params


# One statement per metric: aggregate the current records of the touched periods, upsert
# their facts, delete the touched periods' facts whose group no longer exists (a record
# superseded by one with other dimension values), and count the records without a time.
# The delete and the upsert touch disjoint rows, so they can share the statement.
REFRESH_SQL = """
WITH source AS (
    SELECT {period} AS period_start{dimension_columns}, {value} AS value
      FROM {chart_record}
     WHERE dataset_id = %(dataset_id)s AND is_current
),
by_values AS (
    SELECT period_start, {dimensions} AS dimensions, {aggregate} AS value,
           count(*) AS record_count
      FROM source
     WHERE {source_periods}
     GROUP BY period_start{dimension_names}
),
grouped AS (
    SELECT period_start, dimensions, {dimension_key} AS dimension_key, value, record_count
      FROM by_values
),
written AS (
    INSERT INTO {fact} AS fact
           (metric_id, period_start, grain, dimensions, dimension_key, value, record_count,
            run_id, computed_at)
    SELECT %(metric_id)s, period_start, %(grain)s, dimensions, dimension_key, value,
           record_count, %(run_id)s, now()
      FROM grouped
     WHERE period_start IS NOT NULL
        ON CONFLICT (metric_id, period_start, dimension_key) DO UPDATE
       SET grain = EXCLUDED.grain, dimensions = EXCLUDED.dimensions, value = EXCLUDED.value,
           record_count = EXCLUDED.record_count, run_id = EXCLUDED.run_id,
           computed_at = EXCLUDED.computed_at
    RETURNING 1
),
removed AS (
    DELETE FROM {fact} AS fact
     WHERE fact.metric_id = %(metric_id)s {fact_periods}
       AND NOT EXISTS (
           SELECT 1 FROM grouped
            WHERE grouped.period_start = fact.period_start
              AND grouped.dimension_key = fact.dimension_key)
    RETURNING 1
)
SELECT (SELECT count(*) FROM written),
       (SELECT count(*) FROM removed),
       (SELECT coalesce(sum(record_count), 0) FROM grouped WHERE period_start IS NULL)
"""

# The periods of the records a chart run wrote, and of the records those superseded
# (no longer current, but their old periods must lose their contribution).
TOUCHED_SQL = """
SELECT DISTINCT {period}
  FROM (
      SELECT data FROM {chart_record}
       WHERE run_id = %(run_id)s AND dataset_id = %(dataset_id)s
      UNION ALL
      SELECT old.data
        FROM {chart_record} AS new
        JOIN {chart_record} AS old ON old.superseded_by_id = new.id
       WHERE new.run_id = %(run_id)s AND new.dataset_id = %(dataset_id)s
  ) AS touched
 WHERE (data ->> %(time_field)s::text) IS NOT NULL
"""


# --- Facts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricRefresh:
    written: int  # facts inserted or updated
    removed: int  # facts of touched periods whose group no longer exists
    skipped_null_time: int  # current records without a value in the time field
    periods: int | None  # how many periods were recomputed; None = all of them


def touched_periods(*, dataset: Dataset, run: Run) -> dict[int, set[date]]:
    """Period starts, per active metric of the dataset, touched by a chart run.

    A period is touched when a record the run wrote falls in it, or a record the run
    superseded did.
    """
    fields = contract_fields(dataset=dataset)
    by_time: dict[tuple[str, str], set[date]] = {}  # metrics often share a time and grain
    touched: dict[int, set[date]] = {}
    for metric in MetricDefinition.objects.filter(dataset=dataset, is_active=True):
        time = fields.get(metric.time_field)
        if time is None or time.data_type not in TIME_TYPES:
            touched[metric.pk] = set()  # nothing to place in time; refresh_facts reports it
            continue
        key = (metric.time_field, metric.grain)
        if key not in by_time:
            sql = TOUCHED_SQL.format(period=_period_sql(time.data_type), chart_record=CHART_RECORD)
            params: dict[str, Any] = {
                "run_id": run.pk,
                "dataset_id": dataset.pk,
                "time_field": metric.time_field,
                "grain": metric.grain,
            }
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                by_time[key] = {row[0] for row in cursor.fetchall()}
        touched[metric.pk] = set(by_time[key])
    return touched


def refresh_metric_facts(
    *, metric: MetricDefinition, run: Run, periods: set[date] | None = None
) -> MetricRefresh:
    """Recompute one metric's facts for the given period starts (None: every period).

    Raises ValidationError when the definition no longer holds against the contract
    (e.g. a dimension field was reclassified restricted since).
    """
    with transaction.atomic():
        # Locking the definition serialises refreshes of one metric, and reads its
        # latest version: two overlapping runs cannot interleave their upserts.
        metric = (
            MetricDefinition.objects.select_for_update().select_related("dataset").get(pk=metric.pk)
        )
        validate_metric_definition(metric=metric)
        fields = contract_fields(dataset=metric.dataset)
        value_type = fields[metric.value_field].data_type if metric.value_field else None
        dimension_columns, dimension_names, dimensions, params = _dimensions_sql(
            metric.dimension_fields
        )
        params.update(
            dataset_id=metric.dataset_id,
            metric_id=metric.pk,
            run_id=run.pk,
            grain=metric.grain,
            time_field=metric.time_field,
            value_field=metric.value_field,
            **dimension_key_params(),
        )
        if periods is None:
            source_periods, fact_periods = "TRUE", ""
        else:
            # Records without a time are kept in the grouping only to be counted.
            source_periods = "period_start = ANY(%(periods)s::date[]) OR period_start IS NULL"
            fact_periods = "AND fact.period_start = ANY(%(periods)s::date[])"
            params["periods"] = sorted(periods)
        sql = REFRESH_SQL.format(
            period=_period_sql(fields[metric.time_field].data_type),
            dimensions=dimensions,
            dimension_columns=dimension_columns,
            dimension_names=dimension_names,
            value=_value_sql(metric.aggregation, value_type),
            aggregate=_aggregate_sql(metric.aggregation),
            dimension_key=_dimension_key_sql("dimensions"),
            source_periods=source_periods,
            fact_periods=fact_periods,
            chart_record=CHART_RECORD,
            fact=FACT,
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            written, removed, skipped = cursor.fetchone()
        record_lineage(metric=metric, run=run)
    return MetricRefresh(
        written=written,
        removed=removed,
        skipped_null_time=int(skipped),
        periods=None if periods is None else len(periods),
    )


def refresh_facts(
    *, dataset: Dataset, run: Run, periods: dict[int, set[date] | None] | None = None
) -> int:
    """Recompute the facts of the dataset's active metrics; return how many were written.

    `periods` maps a metric id to the period starts to recompute, as `touched_periods`
    gives them; a metric missing from it has nothing to do. None recomputes every period
    of every metric. A metric whose definition no longer holds is refused and left as
    it was. What happened to each metric is noted in `run.detail["facts"]`.
    """
    written = 0
    summary: dict[str, dict] = {}
    metrics = MetricDefinition.objects.filter(dataset=dataset, is_active=True)
    for metric in metrics.select_related("dataset"):
        metric_periods = None if periods is None else periods.get(metric.pk, set())
        try:
            if metric_periods is not None and not metric_periods:
                # Nothing to recompute, but a definition gone bad is still reported.
                validate_metric_definition(metric=metric)
                continue
            result = refresh_metric_facts(metric=metric, run=run, periods=metric_periods)
        except ValidationError as error:
            logger.warning("Metric %s refused: %s", metric.slug, "; ".join(error.messages))
            summary[metric.slug] = {"refused": error.messages}
            continue
        written += result.written
        summary[metric.slug] = asdict(result)
    run.detail = {**(run.detail or {}), "facts": summary}
    run.save(update_fields=["detail"])
    return written


REKEY_SQL = """
UPDATE {fact} AS fact SET dimension_key = {dimension_key}
 WHERE fact.metric_id = %(metric_id)s AND fact.dimension_key <> {dimension_key}
"""


def rekey_facts() -> int:
    """Make every fact's dimension_key again under the current hash key; return how many.

    After the hash key is rotated (`manage.py retoken`), a refresh rewrites the keys of
    the periods it recomputes (the old-keyed facts of a period are not its groups, so
    they are deleted as the new ones are written); this rewrites the others, so that
    no key made under a retired key is left. One statement per metric, the metric
    locked as a refresh locks it.
    """
    sql = REKEY_SQL.format(fact=FACT, dimension_key=_dimension_key_sql("fact.dimensions"))
    params: dict[str, Any] = dimension_key_params()
    changed = 0
    for metric_id in MetricDefinition.objects.values_list("pk", flat=True):
        with transaction.atomic():
            if not MetricDefinition.objects.select_for_update().filter(pk=metric_id).exists():
                continue
            with connection.cursor() as cursor:
                cursor.execute(sql, {**params, "metric_id": metric_id})
                changed += cursor.rowcount
    return changed


# --- Lineage --------------------------------------------------------------------------


def record_lineage(*, metric: MetricDefinition, run: Run) -> list[LineageEdge]:
    """Lineage chart → navigate for a metric: one dataset-level edge, one per field used.

    Upserted on the edge's natural key, so re-running moves `run` and `last_seen_at`
    along without adding edges.
    """
    used = [metric.value_field, metric.time_field, *metric.dimension_fields]
    # Blank source field = the dataset as a whole; a field used twice is one edge.
    source_fields = dict.fromkeys(["", *(name for name in used if name)])
    edges = []
    for source_field in source_fields:
        # A dimension's values reach the facts as they are; everything else is aggregated.
        grouped = source_field in metric.dimension_fields
        edge, _ = LineageEdge.objects.update_or_create(
            dataset_id=metric.dataset_id,
            source_layer=Layer.CHART,
            source_field=source_field,
            target_layer=Layer.NAVIGATE,
            target_name=metric.slug,
            transform=Transform.GROUPED if grouped else Transform.AGGREGATED,
            defaults={"run": run},
        )
        edges.append(edge)
    return edges


# --- The promotion chart → navigate ------------------------------------------------------


def promote_to_navigate(
    *, dataset: Dataset, triggered_by: str, actor=None, run: Run | None = None
) -> Run:
    """Recompute the facts of every period touched by chart records new since last time.

    The navigate watermark is the last chart record id taken into facts; it moves
    in the same transaction as the facts, so a crash or a re-delivery recomputes the
    same periods to the same facts (facts are upserted).
    """
    if run is None:
        run = create_run(
            dataset=dataset, kind=RunKind.PROMOTE_NAVIGATE, triggered_by=triggered_by, actor=actor
        )
    with promotion_of(run, dataset=dataset, layer=Layer.NAVIGATE) as ours:
        if not ours:
            return run
        try:
            with transaction.atomic():
                watermark, _ = Watermark.objects.select_for_update().get_or_create(
                    dataset=dataset, layer=Layer.NAVIGATE
                )
                new_records = ChartRecord.objects.filter(dataset=dataset, id__gt=watermark.position)
                last_id = new_records.aggregate(last=Max("id"))["last"]
                chart_runs = Run.objects.filter(
                    pk__in=new_records.values("run_id").distinct()
                ).order_by("pk")
                touched_by: defaultdict[int, set[date]] = defaultdict(set)
                # A metric without any fact yet (a first promotion, a new metric) is
                # computed over every period: finding the touched ones would cost more.
                metrics = list(MetricDefinition.objects.filter(dataset=dataset, is_active=True))
                fresh = {m.pk for m in metrics if not Fact.objects.filter(metric=m).exists()}
                if len(fresh) < len(metrics):
                    for chart_run in chart_runs:
                        for metric_id, touched in touched_periods(
                            dataset=dataset, run=chart_run
                        ).items():
                            touched_by[metric_id] |= touched
                periods: dict[int, set[date] | None] = {
                    **touched_by,
                    **dict.fromkeys(fresh),
                }
                written = refresh_facts(dataset=dataset, run=run, periods=periods)
                # Every new chart record went into its periods' facts: in = promoted.
                rows_in = new_records.count()
                if last_id is not None:
                    watermark.position = last_id
                    watermark.save(update_fields=["position", "updated_at"])
                Run.objects.filter(pk=run.pk).update(rows_in=rows_in, rows_promoted=rows_in)
        except DATABASE_OUTAGE_ERRORS:
            # The database went away: nothing of this transaction was kept and the run
            # stays 'running'; the task's retry (once the database is back) redoes it.
            raise
        except Exception as error:
            logger.exception("promotion of %s to navigate failed", dataset.slug)
            finish_run(run, RunStatus.FAILED, error=f"{type(error).__name__}: {error}", actor=actor)
            raise
        return finish_run(
            run,
            RunStatus.SUCCEEDED,
            actor=actor,
            detail={
                "periods": sum(len(p) for p in periods.values() if p is not None),
                "facts_written": written,
            },
        )
