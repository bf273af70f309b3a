"""OpenLineage run events of loads and promotions, for Marquez, DataHub or OpenMetadata.

When a load or a promotion ends (`run_finished`, connected in `orchestration.reactions`),
its events are queued once the run's end commits: a Celery task per configured transport
builds a START event (at the run's start) and a COMPLETE or FAIL event (at its end) from
what was committed, and sends them in that order. Emitting both at the end, rather than
START as the run starts, means a run that never ends in a recorded state (skipped as
busy, or failed behind its back because its worker died) leaves no START without an end;
a consumer orders a run's events by their time. Sending is off the run's path: the run
has committed before anything is built, a receiver that is down costs the task a retry
with backoff and never the run, and a broker outage loses the events, never the run.

Names (documented in the README, kept stable: consumers join on them):
- namespace: ATLAS_OPENLINEAGE_NAMESPACE, by default `atlas://<host of ATLAS_SITE_URL>`,
  for jobs and datasets alike;
- jobs: `<dataset slug>.<run kind>` (`orders.ingest`, `orders.promote_chart`,
  `orders.promote_navigate`);
- datasets: `landing.<slug>` (the files as stored), `explore.<slug>`, `chart.<slug>`,
  `navigate.<metric slug>`;
- run id: a UUID derived from the namespace, the Atlas run's id and its creation time, the
  same for every event of one run and every retry of its task.

Events carry names, types, counts and scores, never a record's value: schemas come from
the contract (field names, types, descriptions), column lineage from Atlas's lineage edges
and metric definitions, quality from the rules' tallies and the score, and a failed run's
error passes `safe_error` first.
"""

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import attr
import requests
from django.conf import settings
from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    RunEvent,
    RunState,
)
from openlineage.client.event_v2 import Run as OpenLineageRun
from openlineage.client.facet_v2 import (
    JobFacet,
    RunFacet,
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    error_message_run,
    input_statistics_input_dataset,
    job_type_job,
    output_statistics_output_dataset,
    ownership_job,
    schema_dataset,
    set_producer,
)
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import (
    ApiKeyTokenProvider,
    HttpConfig,
    HttpTransport,
    TokenProvider,
)
from openlineage.client.transport.transport import Transport

from governance.pipeline.models import (
    Dataset,
    DatasetField,
    GateAction,
    Layer,
    LineageEdge,
    Run,
    RunKind,
    RunStatus,
    Transform,
)
from governance.pipeline.selectors import contract, current_lineage
from governance.quality.kinds import RuleKind
from governance.quality.selectors import RunQuality, run_quality
from navigate.models import MetricDefinition
from navigate.selectors import active_metrics, value_type

logger = logging.getLogger(__name__)

# The runs that move data between layers; maintenance, archive and re-protection do not.
EMITTED_KINDS = (RunKind.INGEST, RunKind.PROMOTE_CHART, RunKind.PROMOTE_NAVIGATE)
HTTP, FILE = "http", "file"
LANDING = "landing"  # the stored files a load reads
MAX_ATTEMPTS = 8
INTEGRATION = "ATLAS"
ERROR_CHARACTERS = 500
# The run id's UUIDv5 namespace: fixed, so that a run's id can be computed again.
RUN_ID_NAMESPACE = uuid.UUID("5f0c7a8e-7e4d-4c55-9a53-0a3f2a1d9b61")


def backoff(attempts: int) -> timedelta:
    """Wait before the next attempt after `attempts` failed ones: 30 s, 1, 2, 4 ... 30 min."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 30 * 60))


# --- Settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    url: str
    endpoint: str
    api_key: str
    timeout: float
    file: str
    namespace: str
    producer: str


def current_settings() -> Settings:
    site = urlsplit(getattr(settings, "ATLAS_SITE_URL", "") or "http://localhost")
    return Settings(
        url=(getattr(settings, "ATLAS_OPENLINEAGE_URL", "") or "").strip(),
        endpoint=getattr(settings, "ATLAS_OPENLINEAGE_ENDPOINT", "") or "api/v1/lineage",
        api_key=getattr(settings, "ATLAS_OPENLINEAGE_API_KEY", "") or "",
        timeout=float(getattr(settings, "ATLAS_OPENLINEAGE_TIMEOUT", 5) or 5),
        file=(getattr(settings, "ATLAS_OPENLINEAGE_FILE", "") or "").strip(),
        namespace=getattr(settings, "ATLAS_OPENLINEAGE_NAMESPACE", "")
        or f"atlas://{site.hostname or 'localhost'}",
        producer=getattr(settings, "ATLAS_OPENLINEAGE_PRODUCER", "")
        or "https://atlas.invalid/openlineage",
    )


def transports() -> list[str]:
    """The configured transports; none (the default) means OpenLineage is off."""
    config = current_settings()
    return [kind for kind, on in ((HTTP, config.url), (FILE, config.file)) if on]


def _transport(kind: str, config: Settings) -> Transport:
    if kind == HTTP:
        return HttpTransport(
            HttpConfig(
                url=config.url,
                endpoint=config.endpoint,
                timeout=config.timeout,
                auth=(
                    ApiKeyTokenProvider({"apiKey": config.api_key})
                    if config.api_key
                    else TokenProvider({})
                ),
                # The task retries with backoff: an attempt here is one request, bounded by
                # the timeout, so that a receiver that is down holds no worker for long.
                retry={"total": 0, "connect": 0, "read": 0},
            )
        )
    if kind == FILE:
        # One JSON object a line, appended: a file grows as a log does.
        return FileTransport(FileConfig(log_file_path=config.file, append=True))
    raise ValueError(f"no OpenLineage transport {kind!r}")


# --- Names ---------------------------------------------------------------------------


def run_id(run: Run, *, namespace: str) -> str:
    """The run's OpenLineage id: the same for each of its events, unique across sites."""
    created = run.created_at.isoformat() if run.created_at else ""
    return str(uuid.uuid5(RUN_ID_NAMESPACE, f"{namespace}/run/{run.pk}/{created}"))


def job_name(dataset: Dataset, kind: str) -> str:
    return f"{dataset.slug}.{kind}"


def dataset_name(layer: str, slug: str) -> str:
    return f"{layer}.{slug}"


# --- What may be said of an error ------------------------------------------------------

# A quoted text (Python's and PostgreSQL's way of showing the value at fault) or a
# constraint's `(field)=(value)`: kept out, whatever it holds.
_QUOTED = re.compile(r"""'[^'\n]*'|"[^"\n]*"|\([^()\n]*\)=\([^()\n]*\)|=\([^()\n]*\)""")


def safe_error(text: str) -> str:
    """A run's error as an event may carry it: its first line, quoted parts replaced.

    Atlas's own failure reasons name fields, counts, settings and limits, never a value;
    an unexpected exception is recorded as its type and message, which may quote the
    value it choked on (`could not convert string to float: '…'`, or PostgreSQL's
    `DETAIL:  Key (email)=(…)` on the next line). Those are what this removes.
    """
    lines = (text or "").strip().splitlines()
    first = lines[0] if lines else ""
    cleaned = _QUOTED.sub("'…'", first)
    if len(cleaned) > ERROR_CHARACTERS:
        cleaned = cleaned[: ERROR_CHARACTERS - 1] + "…"
    return cleaned


# --- Facets --------------------------------------------------------------------------


@attr.define
class AtlasRunFacet(RunFacet):
    """Atlas's own figures of a run: counts and scores, never values."""

    atlasRunId: int  # noqa: N815 - OpenLineage's facets are camelCase
    kind: str
    rowsIn: int  # noqa: N815
    rowsPromoted: int  # noqa: N815
    rowsQuarantined: int  # noqa: N815
    qualityScore: float | None = attr.field(default=None)  # noqa: N815
    dimensionScores: dict[str, float | None] = attr.field(factory=dict)  # noqa: N815
    qualityThreshold: float | None = attr.field(default=None)  # noqa: N815
    belowThreshold: bool | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return (
            "https://atlas.invalid/openlineage/facets/1-0-0/AtlasRunFacet.json#/$defs/AtlasRunFacet"
        )


SchemaField = schema_dataset.SchemaDatasetFacetFields
ColumnFields = column_lineage_dataset.Fields
InputField = column_lineage_dataset.InputField
Transformation = column_lineage_dataset.Transformation

# How a field's values reach chart, as OpenLineage's column lineage says it.
_CHART_TRANSFORMATIONS: dict[str, tuple[str, str, bool]] = {
    Transform.TYPED: ("IDENTITY", "validated against the contract and typed", False),
    Transform.ENCRYPTED: (
        "TRANSFORMATION",
        "encrypted (AES-GCM), with a keyed token for equality",
        True,
    ),
    Transform.MASKED: ("TRANSFORMATION", "masked", True),
}


def _written(rows: int) -> output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet:
    return output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=rows)


def _schema(fields: list[SchemaField]) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(fields=fields)


def _contract_schema(fields: list[DatasetField], *, raw: bool) -> schema_dataset.SchemaDatasetFacet:
    # In explore a field is a key of the payload as received, not yet typed.
    return _schema(
        [
            SchemaField(
                name=field.name,
                type="json" if raw else field.data_type,
                description=field.description or None,
                ordinal_position=position,
                fields=None,  # flat: no nested fields to list
            )
            for position, field in enumerate(fields, start=1)
        ]
    )


def _chart_column_lineage(
    *, namespace: str, slug: str, edges: list[LineageEdge]
) -> column_lineage_dataset.ColumnLineageDatasetFacet | None:
    source = dataset_name(Layer.EXPLORE, slug)
    columns: dict[str, ColumnFields] = {}
    for edge in edges:
        if edge.source_layer != Layer.EXPLORE or edge.target_layer != Layer.CHART:
            continue
        subtype, description, masking = _CHART_TRANSFORMATIONS.get(
            edge.transform, ("TRANSFORMATION", edge.get_transform_display(), False)
        )
        columns[edge.target_name] = ColumnFields(
            inputFields=[
                InputField(
                    namespace=namespace,
                    name=source,
                    field=edge.source_field,
                    transformations=[
                        Transformation(
                            type="DIRECT",
                            subtype=subtype,
                            description=description,
                            masking=masking,
                        )
                    ],
                )
            ]
        )
    if not columns:
        return None
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=columns, dataset=None)


def _metric_schema(
    metric: MetricDefinition, fields: dict[str, DatasetField]
) -> schema_dataset.SchemaDatasetFacet:
    # A metric's facts as one row per period and combination of dimension values.
    columns = [
        SchemaField(
            name="period_start",
            type="date",
            description=f"start of the {metric.grain}",
            fields=None,
        )
    ]
    columns += [
        SchemaField(
            name=name, type=fields[name].data_type if name in fields else "string", fields=None
        )
        for name in metric.dimension_fields
    ]
    columns += [
        SchemaField(
            name="value",
            type=value_type(metric=metric),
            description=metric.aggregation,
            fields=None,
        ),
        SchemaField(name="record_count", type="integer", fields=None),
    ]
    for position, column in enumerate(columns, start=1):
        column.ordinal_position = position
    return _schema(columns)


def _metric_column_lineage(
    *, namespace: str, slug: str, metric: MetricDefinition, known: set[str]
) -> column_lineage_dataset.ColumnLineageDatasetFacet | None:
    """The facts' columns from chart's fields, for the fields Atlas's edges know."""
    source = dataset_name(Layer.CHART, slug)

    def field(name: str, kind: str, subtype: str, description: str) -> InputField:
        return InputField(
            namespace=namespace,
            name=source,
            field=name,
            transformations=[
                Transformation(type=kind, subtype=subtype, description=description, masking=False)
            ],
        )

    columns: dict[str, ColumnFields] = {}
    if metric.value_field and metric.value_field in known:
        columns["value"] = ColumnFields(
            inputFields=[field(metric.value_field, "DIRECT", "AGGREGATION", metric.aggregation)]
        )
    if metric.time_field in known:
        columns["period_start"] = ColumnFields(
            inputFields=[
                field(
                    metric.time_field,
                    "DIRECT",
                    "TRANSFORMATION",
                    f"truncated to the {metric.grain}",
                )
            ]
        )
    grouped = [name for name in metric.dimension_fields if name in known]
    for name in grouped:
        columns[name] = ColumnFields(inputFields=[field(name, "DIRECT", "IDENTITY", "grouped by")])
    if not columns:
        return None
    by_period = [metric.time_field] if metric.time_field in known else []
    return column_lineage_dataset.ColumnLineageDatasetFacet(
        fields=columns,
        dataset=[
            field(name, "INDIRECT", "GROUP_BY", "facts are grouped by it")
            for name in [*by_period, *grouped]
        ],
    )


def _quality_facets(
    quality: RunQuality, *, gate_action: str, rows_in: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rules' results as assertions, and counts as metrics (never a failing value)."""
    severity = "error" if gate_action == GateAction.FAIL else "warn"
    assertions = [
        data_quality_assertions_dataset.Assertion(
            assertion=result.rule.kind,
            success=result.failed_count == 0,
            column=result.rule.field_name or None,
            severity=severity,
            name=f"{result.rule.field_name or '*'}.{result.rule.kind}",
            params={"passed": result.passed_count, "failed": result.failed_count},
        )
        for result in quality.results
    ]
    columns = {
        result.rule.field_name: data_quality_metrics_input_dataset.ColumnMetrics(
            nullCount=result.failed_count,
            count=result.passed_count + result.failed_count,
            quantiles=None,
        )
        for result in quality.results
        if result.rule.kind == RuleKind.NOT_NULL and result.rule.field_name
    }
    facets: dict[str, Any] = {}
    if assertions:
        facets["dataQualityAssertions"] = (
            data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(assertions=assertions)
        )
    metrics = data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
        columnMetrics=columns, rowCount=rows_in
    )
    input_facets: dict[str, Any] = {"dataQualityMetrics": metrics}
    return facets, input_facets


def _run_facet(run: Run, quality: RunQuality | None) -> AtlasRunFacet:
    facet = AtlasRunFacet(
        atlasRunId=run.pk,
        kind=run.kind,
        rowsIn=run.rows_in,
        rowsPromoted=run.rows_promoted,
        rowsQuarantined=run.rows_quarantined,
    )
    score = quality.score if quality is not None else None
    if score is not None:
        facet.qualityScore = None if score.overall is None else float(score.overall)
        facet.dimensionScores = {
            code: None if value is None else float(value)
            for code, value in sorted(score.dimension_scores.items())
        }
        facet.qualityThreshold = float(run.dataset.quality_threshold) if run.dataset else None
        facet.belowThreshold = score.below_threshold
    return facet


def _job_facets(dataset: Dataset, kind: str) -> dict[str, JobFacet]:
    facets: dict[str, JobFacet] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH",
            integration=INTEGRATION,
            jobType="LOAD" if kind == RunKind.INGEST else "PROMOTION",
        )
    }
    owner = dataset.owner
    if owner is not None:
        facets["ownership"] = ownership_job.OwnershipJobFacet(
            owners=[ownership_job.Owner(name=f"user:{owner.get_username()}", type="OWNER")]
        )
    return facets


# --- Events --------------------------------------------------------------------------


def _datasets(
    run: Run, dataset: Dataset, config: Settings, quality: RunQuality | None
) -> tuple[list[InputDataset], list[OutputDataset]]:
    namespace, slug = config.namespace, dataset.slug
    fields = contract(dataset=dataset)
    explore = dataset_name(Layer.EXPLORE, slug)
    chart = dataset_name(Layer.CHART, slug)
    if run.kind == RunKind.INGEST:
        detail = run.detail or {}
        size = detail.get("bytes")
        landing = InputDataset(
            namespace=namespace,
            name=dataset_name(LANDING, slug),
            inputFacets={
                "inputStatistics": input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                    fileCount=1, size=size if isinstance(size, int) else None
                )
            },
        )
        output = OutputDataset(
            namespace=namespace,
            name=explore,
            facets={"schema": _contract_schema(fields, raw=True)},
            outputFacets={"outputStatistics": _written(run.rows_in)},
        )
        return [landing], [output]

    edges = current_lineage(dataset=dataset)
    if run.kind == RunKind.PROMOTE_CHART:
        facets: dict[str, Any] = {"schema": _contract_schema(fields, raw=True)}
        input_facets: dict[str, Any] = {}
        if quality is not None:
            more, input_facets = _quality_facets(
                quality, gate_action=dataset.gate_action, rows_in=run.rows_in
            )
            facets.update(more)
        source = InputDataset(
            namespace=namespace, name=explore, facets=facets, inputFacets=input_facets
        )
        chart_facets: dict[str, Any] = {"schema": _contract_schema(fields, raw=False)}
        lineage = _chart_column_lineage(namespace=namespace, slug=slug, edges=edges)
        if lineage is not None:
            chart_facets["columnLineage"] = lineage
        output = OutputDataset(
            namespace=namespace,
            name=chart,
            facets=chart_facets,
            outputFacets={"outputStatistics": _written(run.rows_promoted)},
        )
        return [source], [output]

    # chart → navigate: one output per metric the dataset feeds.
    by_name = {field.name: field for field in fields}
    source = InputDataset(
        namespace=namespace, name=chart, facets={"schema": _contract_schema(fields, raw=False)}
    )
    written = (run.detail or {}).get("facts") or {}
    outputs = []
    for metric in active_metrics(dataset_id=dataset.pk):
        known = {
            edge.source_field
            for edge in edges
            if edge.target_layer == Layer.NAVIGATE and edge.target_name == metric.slug
        }
        metric_facets: dict[str, Any] = {"schema": _metric_schema(metric, by_name)}
        lineage = _metric_column_lineage(namespace=namespace, slug=slug, metric=metric, known=known)
        if lineage is not None:
            metric_facets["columnLineage"] = lineage
        output_facets: dict[str, Any] = {}
        summary = written.get(metric.slug)
        if isinstance(summary, dict) and isinstance(summary.get("written"), int):
            output_facets["outputStatistics"] = _written(summary["written"])
        outputs.append(
            OutputDataset(
                namespace=namespace,
                name=dataset_name(Layer.NAVIGATE, metric.slug),
                facets=metric_facets,
                outputFacets=output_facets,
            )
        )
    return [source], outputs


def _time(moment: datetime | None, fallback: datetime) -> str:
    return (moment or fallback).isoformat()


def build_events(run: Run, *, config: Settings | None = None) -> list[RunEvent]:
    """The run's START and COMPLETE or FAIL events, from what it committed."""
    config = config or current_settings()
    dataset = run.dataset
    if dataset is None or run.kind not in EMITTED_KINDS:
        return []
    if run.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        return []
    set_producer(config.producer)  # the facets' _producer
    quality = run_quality(run=run) if run.kind == RunKind.PROMOTE_CHART else None
    inputs, outputs = _datasets(run, dataset, config, quality)
    job = Job(
        namespace=config.namespace,
        name=job_name(dataset, run.kind),
        facets=_job_facets(dataset, run.kind),
    )
    identity = run_id(run, namespace=config.namespace)
    start = RunEvent(
        eventType=RunState.START,
        eventTime=_time(run.started_at, run.created_at),
        run=OpenLineageRun(runId=identity),
        job=job,
        inputs=inputs,
        outputs=outputs,
        producer=config.producer,
    )
    end_facets: dict[str, RunFacet] = {"atlas_run": _run_facet(run, quality)}
    failed = run.status == RunStatus.FAILED
    if failed:
        end_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=safe_error(run.error) or "the run failed", programmingLanguage="python"
        )
    end = RunEvent(
        eventType=RunState.FAIL if failed else RunState.COMPLETE,
        eventTime=_time(run.finished_at, run.created_at),
        run=OpenLineageRun(runId=identity, facets=end_facets),
        job=job,
        inputs=inputs,
        outputs=outputs,
        producer=config.producer,
    )
    return [start, end]


# --- Sending -------------------------------------------------------------------------


class DeliveryError(Exception):
    """A transport refused or failed an event; `sent` events of the run went before it."""

    def __init__(self, *, sent: int, reason: str):
        super().__init__(reason)
        self.sent = sent
        self.reason = reason


def describe(exc: BaseException) -> str:
    """The error's kind (and HTTP status), never the receiver's words nor the URL."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    cause = exc.__cause__
    if isinstance(exc, RuntimeError) and isinstance(cause, OSError):  # the file transport's
        return type(cause).__name__
    return type(exc).__name__


def emit(*, run_id: int, transport: str, sent: int = 0) -> int:
    """Send the run's events not sent yet through `transport`; return how many went in all.

    DeliveryError when one fails (nothing after it is sent, so the order holds).
    """
    run = Run.objects.select_related("dataset__owner").filter(pk=run_id).first()
    if run is None:
        return sent
    config = current_settings()
    if transport not in transports():
        return sent  # turned off since the run ended
    events = build_events(run, config=config)
    if sent >= len(events):
        return sent
    try:
        channel = _transport(transport, config)
    except Exception as exc:  # a URL it cannot use: its text is not repeated
        raise DeliveryError(
            sent=sent, reason=f"{describe(exc)} (the {transport} setting)"
        ) from None
    try:
        for event in events[sent:]:
            try:
                channel.emit(event)
            except Exception as exc:
                raise DeliveryError(sent=sent, reason=describe(exc)) from None
            sent += 1
    finally:
        channel.close()
    return sent
