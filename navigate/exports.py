"""A metric's facts out of Atlas: a Parquet or CSV file (`manage.py export_facts`) and a
CSV download in the admin, both streamed in bounded memory.

The file has the columns of the metric's reporting view (navigate.reporting): period,
grain, each dimension typed from the contract, the value typed by its aggregation, the
record count. It is what a BI reader may see, with no person's clearance: a dimension of
a protecting level (masked or encrypted) or outside the contract is left out, and a
metric of a dataset limited to reader groups is not exported. The admin's download is a
person's: every dimension, each value as that reader's clearance shows it (as the facts'
pages and *Export selected as CSV* do), audited with the clearances held.

Rows come from a server-side cursor, CHUNK_ROWS at a time; each chunk is one Parquet row
group or a run of CSV lines, so memory holds one chunk whatever the number of facts.
"""

import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from psycopg import sql

from atlas_site.admin_base import CSV_CHUNK_ROWS, csv_lines
from governance.compliance.clearance import Clearance
from governance.compliance.models import AuditAction
from governance.compliance.protection import DatasetShield
from governance.compliance.services import record_audit
from governance.pipeline.selectors import dataset_shields, readable_dataset_ids
from navigate.models import MetricDefinition
from navigate.reporting import TIMESTAMP, ViewPlan, is_limited, metric_plan
from navigate.selectors import decode_fact_value, facts_for_metric, value_type

CHUNK_ROWS = 10_000
FORMATS = ("parquet", "csv")
ARROW_TYPES = {
    "bigint": pa.int64(),
    # Fact.value is numeric(38, 10); a decimal dimension is read at the same scale.
    "numeric": pa.decimal128(38, 10),
    "text": pa.string(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    TIMESTAMP: pa.timestamp("us", tz="UTC"),
}


class ExportError(Exception):
    """The export cannot be made (an unknown metric, a limited dataset, a bad value)."""


@dataclass(frozen=True)
class FactExport:
    metric: str
    fmt: str
    rows: int
    chunks: int
    columns: list[str]
    left_out: list[str]  # dimensions not exported (protected, or not in the contract)


def metric_by_slug(slug: str) -> MetricDefinition:
    metric = MetricDefinition.objects.select_related("dataset").filter(slug=slug).first()
    if metric is None:
        known = ", ".join(MetricDefinition.objects.values_list("slug", flat=True)[:20])
        raise ExportError(f"no metric {slug!r}" + (f" (metrics: {known})" if known else ""))
    return metric


def arrow_schema(plan: ViewPlan) -> pa.Schema:
    return pa.schema(
        [pa.field(column.name, ARROW_TYPES[column.sql_type]) for column in plan.columns]
    )


def fact_chunks(
    plan: ViewPlan,
    *,
    since: date | None = None,
    chunk_rows: int = CHUNK_ROWS,
    using: str = DEFAULT_DB_ALIAS,
) -> Iterator[list[tuple]]:
    """The facts as the plan types them, `chunk_rows` at a time, from a server-side cursor
    (inside a transaction, so PostgreSQL streams it rather than materialising it)."""
    select = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(column.expression, sql.Identifier(column.name))
        for column in plan.columns
    )
    where = plan.where
    if since is not None:
        where = sql.SQL("{} AND f.period_start >= {}").format(where, sql.Literal(since))
    connection = connections[using]
    with transaction.atomic(using=using):
        cursor = connection.chunked_cursor()
        try:
            statement = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY f.period_start, f.id").format(
                select, sql.SQL(plan.table), where
            )
            cursor.execute(statement.as_string(cursor.connection))
            while rows := cursor.fetchmany(chunk_rows):
                yield rows
        finally:
            cursor.close()


def _record_batch(rows: list[tuple], schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for position, column in enumerate(schema):
        try:
            arrays.append(pa.array([row[position] for row in rows], type=column.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            # pyarrow's message may quote the value: only the column is named.
            raise ExportError(
                f"column {column.name!r} holds a value that does not fit {column.type}"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def export_facts(
    *,
    metric: MetricDefinition,
    fmt: str,
    out: IO,
    since: date | None = None,
    chunk_rows: int = CHUNK_ROWS,
    actor: str = "manage.py export_facts",
) -> FactExport:
    """Write the metric's facts to `out` (binary for parquet, text for csv) at the
    reporting role's view; audited (which metric, columns, rows, never values)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: choose {' or '.join(FORMATS)}")
    if is_limited(metric.dataset_id):
        raise ExportError(
            f"metric {metric.slug!r} is over dataset {metric.dataset.slug!r}, which is limited "
            "to reader groups: its facts are not exported for BI (its readers download them "
            "from the admin)"
        )
    plan = metric_plan(metric)
    names = [column.name for column in plan.columns]
    shown = {column.source for column in plan.columns if column.source}
    left_out = [name for name in metric.dimension_fields if name not in shown]
    rows = chunks = 0
    chunked = fact_chunks(plan, since=since, chunk_rows=chunk_rows)
    if fmt == "parquet":
        schema = arrow_schema(plan)
        with pq.ParquetWriter(out, schema) as writer:
            for chunk in chunked:
                writer.write_batch(_record_batch(chunk, schema))  # one row group per chunk
                rows, chunks = rows + len(chunk), chunks + 1
    else:
        header_written = False
        for chunk in chunked:
            lines = csv_lines(names, chunk)
            if header_written:
                next(lines)
            out.writelines(lines)
            header_written = True
            rows, chunks = rows + len(chunk), chunks + 1
        if not header_written:
            out.writelines(csv_lines(names, []))
    record_audit(
        actor=actor,
        action=AuditAction.ACTION,
        instance=metric,
        after={
            "format": fmt,
            "columns": names,
            "left_out": left_out,
            "since": since.isoformat() if since else None,
            "rows": rows,
        },
        detail=f"Exported {rows} facts of metric {metric.slug} as {fmt} at the reporting "
        "view: protected dimensions left out.",
    )
    return FactExport(metric.slug, fmt, rows, chunks, names, left_out)


def storage_key(metric: MetricDefinition, fmt: str) -> str:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return f"exports/facts/{metric.slug}/{metric.slug}-{stamp}.{fmt}"


def export_facts_to_storage(
    *,
    metric: MetricDefinition,
    fmt: str,
    key: str | None = None,
    since: date | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[FactExport, str]:
    """The export written to Atlas's object storage (S3 when configured) under `key`;
    returns it and the key it was saved under. Spooled through a temporary file on disk,
    so memory stays bounded; stored as is, not envelope-encrypted like landing files and
    archives: it holds only what the reporting role may read, for BI tools to fetch."""
    with tempfile.TemporaryFile() as spool:
        if fmt == "csv":
            text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
            result = export_facts(
                metric=metric, fmt=fmt, out=text, since=since, chunk_rows=chunk_rows
            )
            text.flush()
            text.detach()  # the spool stays open for the upload
        else:
            result = export_facts(
                metric=metric, fmt=fmt, out=spool, since=since, chunk_rows=chunk_rows
            )
        spool.seek(0)
        target = key or storage_key(metric, fmt)
        saved = default_storage.save(target, File(spool, name=target))
    return result, saved


# --- The admin's download: a person's clearance --------------------------------------------


def reader_fact_lines(
    *, metric: MetricDefinition, shield: DatasetShield, since: date | None = None
) -> tuple[list[str], Iterator[str]]:
    """The header and the CSV lines of a metric's facts as one reader sees them: every
    dimension at its field's level (masked without clearance), formulas defused."""
    dimensions = list(metric.dimension_fields)
    data_type = value_type(metric=metric)
    header = ["period_start", "grain", *dimensions, "value", "record_count"]
    facts = facts_for_metric(metric=metric, start=since).order_by("period_start", "id")
    rows = facts.values_list("period_start", "grain", "dimensions", "value", "record_count")

    def shown(row: tuple[Any, ...]) -> list[Any]:
        period_start, grain, values, value, record_count = row
        values = values if isinstance(values, dict) else {}
        return [
            period_start,
            grain,
            *(shield.value(name, values.get(name)) for name in dimensions),
            decode_fact_value(value=value, data_type=data_type),
            record_count,
        ]

    lines = csv_lines(header, map(shown, rows.iterator(chunk_size=CSV_CHUNK_ROWS)))
    return header, lines


def download_facts(
    *, metric: MetricDefinition, user, since: date | None = None
) -> tuple[list[str], Iterator[str]]:
    """A person's CSV of one metric's facts (the admin's download): refused when the
    dataset's records are limited to groups the user is not in; audited with the
    clearances the user held, as *Export selected as CSV* is."""
    readable = readable_dataset_ids(user)
    if readable is not None and metric.dataset_id not in readable:
        raise ExportError(
            f"the records of dataset {metric.dataset.slug!r} are limited to its reader groups"
        )
    shield = dataset_shields(user)(metric.dataset_id)
    header, lines = reader_fact_lines(metric=metric, shield=shield, since=since)
    cleared = Clearance.for_user(user).cleared_level_names()
    record_audit(
        actor=user,
        action=AuditAction.ACTION,
        instance=metric,
        after={
            "columns": header,
            "since": since.isoformat() if since else None,
            "clearance": cleared,
        },
        detail=f"Downloaded the facts of metric {metric.slug} as CSV."
        + (
            f" With clearance for {', '.join(cleared)}: those levels' values in clear."
            if cleared
            else " Without clearance: protected values masked."
        ),
    )
    return header, lines
