"""The read surface for BI: typed views in the `reporting` schema.

One view per dataset over its current chart records (`reporting.dataset_<slug>`) and one
per metric over its facts (`reporting.metric_<slug>`), each column typed from the
contract. A BI reader is a database role that holds no clearance, so each view shows
what a reader without clearance may see in clear, and nothing it could not (README,
*Sensitive values*):

- a field classified at a level that protects nothing (no masking, no encryption, e.g.
  `public`), or not classified (chart keeps such a field with the PII the scan found
  replaced by its type), is a typed column;
- a field of a protecting level (masked like `internal` and `confidential`, or encrypted
  like `restricted`) is never in clear: where chart keeps its keyed token (encrypted
  fields, unique fields) it is the text column `<field>_token` (equal values, equal
  tokens: counts of distinct values and joins work, the value is not readable without
  ATLAS_HASH_KEY), otherwise it is left out. A masked form is not offered: a partial mask
  shows up to four characters of every row, and the role has no person to clear;
- a fact dimension of a protecting level, or outside the contract, is left out (facts
  keep no tokens), so the metric's rows stay one per fact: sums and counts still add up
  over the missing dimension;
- a dataset limited to groups (Dataset.reader_groups) has no view, nor have its metrics:
  the reporting role is no member of any group.

Each view's comment names the fields left out and why (names and levels, never values).
A value that does not have its field's type (stored before a contract's type changed)
reads NULL rather than failing the reader's query; chart records still masked from
before typed values (`protection_version` 1) are not in the views.

The views are dropped and created again, all in one transaction (readers see the old
set or the new one), by `build_reporting_views`: after every `migrate` (NavigateConfig)
and `manage.py build_reporting_views`, and whenever a contract, a classification level,
a dataset's reader groups or a metric definition changes (orchestration.reactions).
Views run with their owner's privileges: the reporting role reads them without any
privilege on chart or navigate.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from psycopg import sql

from atlas_site import advisory_locks
from atlas_site.schemas import REPORTING, sql_table
from chart.models import TYPED_VALUES, ChartRecord
from governance.compliance.models import ClassificationLevel, MaskingRule
from governance.pipeline.models import Dataset, DatasetField, FieldType
from navigate.definitions import Aggregation
from navigate.models import Fact, MetricDefinition

logger = logging.getLogger(__name__)

# One rebuild at a time (a second one would find the first one's views half dropped).
REPORTING_VIEWS_LOCK = advisory_locks.REPORTING_VIEWS
# A BI query holding a view makes the rebuild wait at most this long, then fail (the
# caller retries later) rather than hold a steward's request.
LOCK_TIMEOUT = "5s"
MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1

CLEAR, TOKEN, LEFT_OUT = "clear", "token", "left out"

SQL_TYPES = {
    FieldType.STRING: "text",
    FieldType.EMAIL: "text",
    FieldType.ENUM: "text",
    FieldType.INTEGER: "bigint",
    FieldType.DECIMAL: "numeric",
    FieldType.BOOLEAN: "boolean",
    FieldType.DATE: "date",
    FieldType.DATETIME: "timestamp with time zone",
}
TIMESTAMP = SQL_TYPES[FieldType.DATETIME]


class ReportingBuildError(Exception):
    """The views could not be rebuilt (a lock not granted in time, no privilege)."""


@dataclass(frozen=True)
class Column:
    name: str
    expression: sql.Composable
    comment: str
    sql_type: str  # one of SQL_TYPES' values, what the expression gives
    source: str = ""  # the contract field it shows, if any


@dataclass
class ViewPlan:
    name: str
    source: str  # "dataset <slug>" or "metric <slug>"
    comment: str
    table: str  # the quoted table and its alias
    where: sql.Composable
    columns: list[Column] = field(default_factory=list)


@dataclass(frozen=True)
class ReportingViews:
    views: list[str]  # the views built, by name
    limited_datasets: list[str]  # datasets left out: limited to reader groups


# --- What a reader without clearance may see -------------------------------------------


def protects(level: ClassificationLevel | None) -> bool:
    return level is not None and (level.requires_encryption or level.masking != MaskingRule.NONE)


def field_exposure(dataset_field: DatasetField | None, *, tokens: bool = True) -> str:
    """How a field reaches a BI reader: CLEAR, TOKEN (`tokens`: the source keeps them) or
    LEFT_OUT. A field outside the contract is treated at the highest level."""
    if dataset_field is None:
        return LEFT_OUT
    level = dataset_field.classification
    if not protects(level):
        return CLEAR
    # Chart keeps a keyed token of every encrypted and every unique field's value.
    has_token = (level is not None and level.requires_encryption) or dataset_field.unique
    return TOKEN if tokens and has_token else LEFT_OUT


def _level_name(dataset_field: DatasetField | None) -> str:
    if dataset_field is None:
        return "not in the contract"
    level = dataset_field.classification
    return level.name if level is not None else "unclassified"


# --- Typed SQL from jsonb ---------------------------------------------------------------


def typed_value(value: sql.Composable, data_type: str) -> sql.Composable:
    """A jsonb value as its field's SQL type; NULL when it does not have that type (so a
    record stored under an older contract never fails a reader's query)."""
    text = sql.SQL("({} #>> '{{}}')").format(value)
    kind = sql.SQL("jsonb_typeof({})").format(value)
    if data_type == FieldType.INTEGER:
        number = sql.SQL("({})::numeric").format(value)
        return sql.SQL(
            "CASE WHEN {kind} = 'number' AND {n} BETWEEN {low} AND {high} AND {n} = trunc({n}) "
            "THEN {n}::bigint END"
        ).format(kind=kind, n=number, low=sql.Literal(BIGINT_MIN), high=sql.Literal(BIGINT_MAX))
    if data_type == FieldType.DECIMAL:
        # Decimals are JSON strings in chart (exact), integers JSON numbers.
        return sql.SQL(
            "CASE WHEN {kind} = 'number' THEN ({value})::numeric "
            "WHEN {kind} = 'string' AND {text} ~ '^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)"
            "([eE][-+]?[0-9]+)?$' THEN {text}::numeric END"
        ).format(kind=kind, value=value, text=text)
    if data_type == FieldType.BOOLEAN:
        return sql.SQL("CASE WHEN {kind} = 'boolean' THEN ({value})::boolean END").format(
            kind=kind, value=value
        )
    if data_type == FieldType.DATE:
        return sql.SQL(
            "CASE WHEN {text} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' THEN {text}::date END"
        ).format(text=text)
    if data_type == FieldType.DATETIME:
        return sql.SQL(
            "CASE WHEN {text} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[T ][0-9]{{2}}:[0-9]{{2}}' "
            "THEN {text}::timestamptz END"
        ).format(text=text)
    return text


def _member(column: str, name: str) -> sql.Composable:
    return sql.SQL("{} -> {}").format(sql.SQL(column), sql.Literal(name))


# --- Names --------------------------------------------------------------------------------


def _identifier(name: str, taken: set[str], *, suffix: str = "") -> str:
    """A name of at most 63 bytes that is not yet taken (a number added if it is)."""
    candidate = name.encode()[:MAX_IDENTIFIER].decode(errors="ignore")
    number = 2
    while candidate in taken:
        tail = suffix or f"_{number}"
        candidate = name[: MAX_IDENTIFIER - len(tail)] + tail
        suffix, number = "", number + 1
    taken.add(candidate)
    return candidate


def view_name(prefix: str, slug: str, pk: int, taken: set[str]) -> str:
    # Lower case with underscores: a BI tool can name it without quotes.
    return _identifier(f"{prefix}_{slug.lower().replace('-', '_')}", taken, suffix=f"_{pk}")


# --- Plans --------------------------------------------------------------------------------


def _left_out_note(left_out: list[str]) -> str:
    if not left_out:
        return ""
    return " Left out (protected, no token kept, or not in the contract): " + ", ".join(left_out)


def dataset_view_plan(dataset: Dataset, fields: list[DatasetField], *, name: str) -> ViewPlan:
    """The view of a dataset's current chart records, one column per contract field."""
    taken = {"chart_record_id", "promoted_at"}
    columns = [
        Column("chart_record_id", sql.SQL("r.id"), "The chart record's id.", "bigint"),
        Column("promoted_at", sql.SQL("r.created_at"), "When it reached chart.", TIMESTAMP),
    ]
    left_out: list[str] = []
    tokens: list[str] = []
    for dataset_field in fields:
        exposure = field_exposure(dataset_field)
        level = _level_name(dataset_field)
        about = f"{dataset_field.name}: {FieldType(dataset_field.data_type).label}, {level}."
        if dataset_field.description:
            about += " " + dataset_field.description
        if exposure == CLEAR:
            expression = typed_value(_member("r.data", dataset_field.name), dataset_field.data_type)
            columns.append(
                Column(
                    _identifier(dataset_field.name, taken),
                    expression,
                    about,
                    SQL_TYPES[dataset_field.data_type],
                    dataset_field.name,
                )
            )
        elif exposure == TOKEN:
            column = _identifier(f"{dataset_field.name}_token", taken)
            expression = sql.SQL("(r.tokens ->> {})").format(sql.Literal(dataset_field.name))
            columns.append(Column(column, expression, f"Keyed token of {about}", "text"))
            tokens.append(f"{dataset_field.name} ({level}) as {column}")
        else:
            left_out.append(f"{dataset_field.name} ({level})")
    comment = f"Current chart records of dataset {dataset.slug} ({dataset.name})."
    if tokens:
        comment += " Keyed tokens only: " + ", ".join(tokens) + "."
    comment += _left_out_note(left_out)
    return ViewPlan(
        name=name,
        source=f"dataset {dataset.slug}",
        comment=comment,
        columns=columns,
        where=sql.SQL("r.dataset_id = {} AND r.is_current AND r.protection_version = {}").format(
            sql.Literal(dataset.pk), sql.Literal(TYPED_VALUES)
        ),
        table=sql_table(ChartRecord) + " AS r",
    )


def fact_value(metric: MetricDefinition, fields: dict[str, DatasetField]) -> tuple[sql.SQL, str]:
    """The SQL of a fact's value as its type, and the type's label."""
    if metric.aggregation in (Aggregation.COUNT, Aggregation.DISTINCT_COUNT):
        return sql.SQL("f.value::bigint"), "bigint"
    value_field = fields.get(metric.value_field)
    data_type = value_field.data_type if value_field is not None else None
    if metric.aggregation in (Aggregation.MIN, Aggregation.MAX):
        # A minimum or maximum of a time is stored as seconds since the epoch (UTC).
        if data_type == FieldType.DATETIME:
            return sql.SQL("to_timestamp(f.value::double precision)"), SQL_TYPES[data_type]
        if data_type == FieldType.DATE:
            return (
                sql.SQL("(to_timestamp(f.value::double precision) AT TIME ZONE 'UTC')::date"),
                SQL_TYPES[data_type],
            )
    return sql.SQL("f.value"), "numeric"


def metric_view_plan(
    metric: MetricDefinition, fields: dict[str, DatasetField], *, name: str
) -> ViewPlan:
    """The view of a metric's facts: its period, one column per dimension, its value."""
    taken = {"period_start", "grain", "value", "record_count", "computed_at"}
    columns = [
        Column("period_start", sql.SQL("f.period_start"), "First day of the period.", "date"),
        Column("grain", sql.SQL("f.grain::text"), "Day, week, month or year.", "text"),
    ]
    left_out: list[str] = []
    for dimension in metric.dimension_fields:
        dataset_field = fields.get(dimension)
        if field_exposure(dataset_field, tokens=False) != CLEAR:
            left_out.append(f"{dimension} ({_level_name(dataset_field)})")
            continue
        assert dataset_field is not None  # CLEAR is only given to contract fields
        expression = typed_value(_member("f.dimensions", dimension), dataset_field.data_type)
        about = f"Dimension {dimension}: {FieldType(dataset_field.data_type).label}."
        columns.append(
            Column(
                _identifier(dimension, taken),
                expression,
                about,
                SQL_TYPES[dataset_field.data_type],
                dimension,
            )
        )
    value, value_type = fact_value(metric, fields)
    columns += [
        Column("value", value, f"{metric.get_aggregation_display()}.", value_type),
        Column("record_count", sql.SQL("f.record_count"), "Records in the group.", "bigint"),
        Column("computed_at", sql.SQL("f.computed_at"), "When it was computed.", TIMESTAMP),
    ]
    comment = (
        f"Facts of metric {metric.slug} ({metric.name}) over dataset {metric.dataset.slug}, "
        f"by {metric.get_grain_display().lower()}"
        + ("" if metric.is_active else "; the metric is inactive")
        + "."
    )
    if left_out:
        comment += (
            " Dimensions left out (protected, or not in the contract): "
            + ", ".join(left_out)
            + "; rows stay one per fact."
        )
    return ViewPlan(
        name=name,
        source=f"metric {metric.slug}",
        comment=comment,
        columns=columns,
        where=sql.SQL("f.metric_id = {}").format(sql.Literal(metric.pk)),
        table=sql_table(Fact) + " AS f",
    )


def reporting_plans() -> tuple[list[ViewPlan], list[str]]:
    """Every view the schema should hold, and the datasets left out (limited to groups)."""
    limited = set(
        Dataset.reader_groups.through.objects.values_list("dataset_id", flat=True).distinct()
    )
    datasets = list(Dataset.objects.order_by("pk"))
    fields_of: dict[int, list[DatasetField]] = {dataset.pk: [] for dataset in datasets}
    for dataset_field in DatasetField.objects.select_related("classification").order_by(
        "dataset_id", "position", "name"
    ):
        fields_of.setdefault(dataset_field.dataset_id, []).append(dataset_field)
    taken: set[str] = set()
    plans: list[ViewPlan] = []
    for dataset in datasets:
        if dataset.pk in limited:
            continue
        name = view_name("dataset", dataset.slug, dataset.pk, taken)
        plans.append(dataset_view_plan(dataset, fields_of[dataset.pk], name=name))
    metrics = MetricDefinition.objects.select_related("dataset").order_by("pk")
    for metric in metrics.exclude(dataset_id__in=limited):
        by_name = {f.name: f for f in fields_of.get(metric.dataset_id, [])}
        name = view_name("metric", metric.slug, metric.pk, taken)
        plans.append(metric_view_plan(metric, by_name, name=name))
    limited_slugs = [dataset.slug for dataset in datasets if dataset.pk in limited]
    return plans, limited_slugs


# --- Building -----------------------------------------------------------------------------


def _create_statements(plan: ViewPlan) -> Iterable[sql.Composable]:
    view = sql.Identifier(REPORTING, plan.name)
    select = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(column.expression, sql.Identifier(column.name))
        for column in plan.columns
    )
    yield sql.SQL("CREATE VIEW {} AS SELECT {} FROM {} WHERE {}").format(
        view, select, sql.SQL(plan.table), plan.where
    )
    yield sql.SQL("COMMENT ON VIEW {} IS {}").format(view, sql.Literal(plan.comment))
    for column in plan.columns:
        yield sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
            view, sql.Identifier(column.name), sql.Literal(column.comment)
        )


def can_build(*, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether this connection's role may rebuild the views (owns the schema, as the
    owner role or a single deploy role does; the app role of a two-role deploy does not)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT pg_has_role(current_user, nspowner, 'USAGE') FROM pg_namespace "
            "WHERE nspname = %s",
            [REPORTING],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def readers(cursor) -> list[str]:
    """The roles that may use the schema (the reporting role): granted SELECT on each view
    built, so a view rebuilt by another role than the one default privileges name stays
    readable."""
    cursor.execute(
        "SELECT DISTINCT pg_get_userbyid(acl.grantee) FROM pg_namespace n, "
        "aclexplode(n.nspacl) AS acl WHERE n.nspname = %s AND acl.privilege_type = 'USAGE' "
        "AND acl.grantee <> 0 AND acl.grantee <> n.nspowner",
        [REPORTING],
    )
    return [name for (name,) in cursor.fetchall()]


def build_reporting_views(*, using: str = DEFAULT_DB_ALIAS) -> ReportingViews:
    """Drop every view of the reporting schema and create the planned ones, in one
    transaction. Raises ReportingBuildError when it cannot (nothing changed then)."""
    connection = connections[using]
    try:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_TIMEOUT])
            cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [REPORTING_VIEWS_LOCK])
            plans, limited = reporting_plans()
            cursor.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'v'",
                [REPORTING],
            )
            for (name,) in cursor.fetchall():
                cursor.execute(
                    sql.SQL("DROP VIEW {}")
                    .format(sql.Identifier(REPORTING, name))
                    .as_string(cursor.connection)
                )
            grantees = readers(cursor)
            for plan in plans:
                for statement in _create_statements(plan):
                    cursor.execute(statement.as_string(cursor.connection))
                for grantee in grantees:
                    cursor.execute(
                        sql.SQL("GRANT SELECT ON {} TO {}")
                        .format(sql.Identifier(REPORTING, plan.name), sql.Identifier(grantee))
                        .as_string(cursor.connection)
                    )
    except Exception as error:
        # The database's message names objects, never record values.
        raise ReportingBuildError(f"{type(error).__name__}: {error}".strip()) from error
    logger.info("reporting views rebuilt: %d views, %d datasets left out", len(plans), len(limited))
    return ReportingViews(views=[plan.name for plan in plans], limited_datasets=limited)


def rebuild_after_migrate(sender, using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    """post_migrate: the views follow what the migrations changed. A failure is reported
    and leaves `migrate` standing (`manage.py build_reporting_views` builds them later)."""
    if not can_build(using=using):
        return  # no reporting schema yet (migrated back), or another role owns it
    try:
        build_reporting_views(using=using)
    except ReportingBuildError as error:
        logger.warning("reporting views not rebuilt after migrate: %s", error)


def metric_plan(metric: MetricDefinition) -> ViewPlan:
    """One metric's view as a BI reader sees it (exports read facts through it)."""
    fields = DatasetField.objects.filter(dataset_id=metric.dataset_id).select_related(
        "classification"
    )
    by_name = {dataset_field.name: dataset_field for dataset_field in fields}
    return metric_view_plan(
        metric, by_name, name=view_name("metric", metric.slug, metric.pk, set())
    )


def is_limited(dataset_id: int) -> bool:
    """Whether the dataset's records are limited to reader groups (no BI view)."""
    return Dataset.reader_groups.through.objects.filter(dataset_id=dataset_id).exists()
