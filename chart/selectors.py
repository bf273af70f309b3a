"""Reads of the chart layer for pages above it: what recent promotions found, samples."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef, Q

from atlas_site.schemas import sql_table
from chart.business_keys import KeyMaker, key_parts
from chart.models import ChartRecord, PiiFinding, QuarantinedRecord
from explore.models import LandingBatch, RawRecord
from governance.compliance.impact import CHART_SAMPLE, QUARANTINE_SAMPLE, ImpactSample
from governance.compliance.pii.masking import Piece, marked_value
from governance.compliance.pii.scanner import payload_texts
from governance.compliance.protection import PROTECTED_TEXT, DatasetShield, ShownValue
from governance.compliance.tokens import is_token
from governance.pipeline.models import (
    Dataset,
    DatasetField,
    Layer,
    Run,
    RunKind,
    Watermark,
    mostly_quarantined,
)
from governance.pipeline.selectors import DatasetShields

# The PII summary of a dataset's page: the findings of its latest promotions, bounded.
PII_RECENT_RUNS = 5
PII_SAMPLE_ROWS = 50_000


@dataclass(frozen=True)
class PiiFieldSummary:
    field_name: str
    pii_type: str
    findings: int
    examples: list[str]  # masked excerpts, as stored


def pii_summary(
    *, dataset: Dataset, runs: int = PII_RECENT_RUNS, sample: int = PII_SAMPLE_ROWS
) -> list[PiiFieldSummary]:
    """PII findings by field and type in the dataset's latest promotions to chart.

    Bounded: the findings of the last `runs` promotions, at most `sample` of them (read
    through the run index), so the page costs the same on a table of millions.
    """
    run_ids = list(
        Run.objects.filter(dataset=dataset, kind=RunKind.PROMOTE_CHART)
        .order_by("-created_at")
        .values_list("pk", flat=True)[:runs]
    )
    if not run_ids:
        return []
    table = sql_table(PiiFinding)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT field_name, pii_type, count(*), (array_agg(masked_excerpt))[1:3]
              FROM (SELECT field_name, pii_type, masked_excerpt FROM {table}
                     WHERE run_id = ANY(%s) LIMIT %s) AS recent
             GROUP BY field_name, pii_type
             ORDER BY count(*) DESC, field_name, pii_type
            """,
            [run_ids, sample],
        )
        return [
            PiiFieldSummary(name, pii_type, count, list(examples))
            for name, pii_type, count, examples in cursor.fetchall()
        ]


def impact_sample(
    *, chart: int = CHART_SAMPLE, quarantine: int = QUARANTINE_SAMPLE
) -> ImpactSample:
    """The raw payloads of the newest `chart` chart records and `quarantine` quarantined
    records, as (dataset id, payload), newest first: what a PII pattern preview scans
    (governance.compliance.impact). Read by primary key, so it costs the same on ten
    rows or ten million."""
    chart_rows = _newest(ChartRecord, chart)
    quarantine_rows = _newest(QuarantinedRecord, quarantine)
    payloads = _raw_payloads([raw_id for _, raw_id in chart_rows + quarantine_rows])
    dataset_ids = {dataset_id for dataset_id, _ in chart_rows + quarantine_rows}
    return ImpactSample(
        chart=[(dataset_id, payloads.get(raw_id)) for dataset_id, raw_id in chart_rows],
        quarantine=[(dataset_id, payloads.get(raw_id)) for dataset_id, raw_id in quarantine_rows],
        dataset_slugs=dict(Dataset.objects.filter(pk__in=dataset_ids).values_list("pk", "slug")),
        restricted_fields=set(
            DatasetField.objects.filter(
                dataset_id__in=dataset_ids, classification__requires_encryption=True
            ).values_list("dataset_id", "name")
        ),
        countries=dict(
            Dataset.objects.filter(pk__in=dataset_ids)
            .exclude(country="")
            .values_list("pk", "country")
        ),
        field_countries={
            (dataset_id, name): country
            for dataset_id, name, country in DatasetField.objects.filter(dataset_id__in=dataset_ids)
            .exclude(country="")
            .values_list("dataset_id", "name", "country")
        },
        chart_limit=chart,
        quarantine_limit=quarantine,
    )


def _newest(model, limit: int) -> list[tuple[int, int]]:
    """(dataset id, raw record id) of the newest `limit` rows, newest first."""
    if limit <= 0:
        return []
    return list(model.objects.order_by("-id").values_list("dataset_id", "raw_record_id")[:limit])


def _raw_payloads(raw_ids: list[int]) -> dict[int, Any]:
    # `id IN (...)` is one index scan per partition of explore.raw_record, whichever
    # months the records arrived in.
    if not raw_ids:
        return {}
    return dict(RawRecord.objects.filter(id__in=raw_ids).values_list("id", "payload"))


def finding_in_its_value(*, finding: PiiFinding, shield: DatasetShield) -> list[Piece] | None:
    """The value a finding was made in, as `shield`'s reader may see it around the finding:
    every PII span of the value masked, the finding's own marked, the words around shown
    only to a reader who sees the field's level in clear. None: no position was kept (a
    finding older than positions) or the raw value is gone (archived)."""
    if finding.span_start is None or finding.span_end is None:
        return None
    payload = (
        RawRecord.objects.filter(id=finding.raw_record_id).values_list("payload", flat=True).first()
    )
    text = dict(payload_texts(payload)).get(finding.field_name)
    if text is None or finding.span_end > len(text):
        return None
    others = PiiFinding.objects.filter(
        raw_record_id=finding.raw_record_id, run_id=finding.run_id, field_name=finding.field_name
    ).exclude(pk=finding.pk)
    level_id = shield.level_of(finding.field_name)
    return marked_value(
        text,
        (finding.span_start, finding.span_end),
        pii_type=finding.pii_type,
        other_spans=[
            (start, end)
            for start, end in others.values_list("span_start", "span_end")
            if start is not None and end is not None
        ],
        context=shield.clearance.sees(level_id),
    )


def batch_promotion(*, batch: LandingBatch) -> dict[str, Any] | None:
    """How far a loaded batch's records went: waiting for the promotion, being promoted,
    or promoted (into chart and quarantine, counted, with the run that took its last
    record). None before the batch is loaded. JSON-ready; index probes only, and the
    counts are made once the whole batch is past the chart watermark.
    """
    first, last = batch.first_raw_id, batch.last_raw_id
    if first is None or last is None:
        return None
    mark = (
        Watermark.objects.filter(dataset_id=batch.dataset_id, layer=Layer.CHART)
        .values_list("position", flat=True)
        .first()
    ) or 0
    automatic = (
        Dataset.objects.filter(pk=batch.dataset_id).values_list("auto_promote", flat=True).first()
    )
    if mark < first:
        return {"state": "waiting", "settled": not automatic, "automatic": bool(automatic)}
    if mark < last:
        done = (mark - first + 1) / (last - first + 1)
        return {"state": "promoting", "settled": False, "fraction": round(done, 3)}
    in_range = {
        "dataset_id": batch.dataset_id,
        "raw_record_id__gte": first,
        "raw_record_id__lte": last,
    }
    promoted = ChartRecord.objects.filter(**in_range).count()
    quarantined = QuarantinedRecord.objects.filter(**in_range).count()
    run_id = (
        ChartRecord.objects.filter(dataset_id=batch.dataset_id, raw_record_id=last)
        .values_list("run_id", flat=True)
        .first()
    ) or (
        QuarantinedRecord.objects.filter(dataset_id=batch.dataset_id, raw_record_id=last)
        .values_list("run_id", flat=True)
        .first()
    )
    return {
        "state": "promoted",
        "settled": True,
        "promoted": promoted,
        "quarantined": quarantined,
        "mostly_quarantined": mostly_quarantined(
            examined=promoted + quarantined, quarantined=quarantined
        ),
        "run_id": run_id,
    }


# The open records a quarantine's groups are counted over: the newest ones, bounded.
GROUPS_SAMPLE = 100_000


@dataclass(frozen=True)
class QuarantineGroup:
    field: str
    rule: str
    records: int


def open_quarantine_groups(
    *, dataset_id: int | None = None, limit: int = 20, sample: int = GROUPS_SAMPLE
) -> list[QuarantineGroup]:
    """The reasons open quarantined records share, by field and rule, most records first:
    what one fix could clear at once. Counted over the newest `sample` open records (of
    the dataset, when given), read backwards along the (dataset, status) index."""
    where = "status = %s" + (" AND dataset_id = %s" if dataset_id is not None else "")
    params: list[Any] = ["open"] + ([dataset_id] if dataset_id is not None else [])
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT reason->>'field', reason->>'rule', count(DISTINCT q.id)
              FROM (SELECT id, reasons FROM {sql_table(QuarantinedRecord)}
                     WHERE {where} ORDER BY id DESC LIMIT %s) q
             CROSS JOIN LATERAL jsonb_array_elements(q.reasons) reason
             GROUP BY 1, 2
             ORDER BY 3 DESC, 1, 2
             LIMIT %s
            """,
            [*params, sample, limit],
        )
        return [
            QuarantineGroup(field or "", rule or "", records)
            for field, rule, records in cursor.fetchall()
        ]


# --- Quarantined records by business key ------------------------------------------------

ENCRYPTED_SHOWN = "[encrypted]"
KEY_SEPARATOR = "|"
KEY_SEPARATOR_SHOWN = " | "


def shown_business_key(shield: DatasetShield, key_fields: Sequence[str], business_key: str) -> str:
    """A quarantined record's key as the reader may see it: each part masked as the review
    shows that field's value (DatasetShield.field), a part chart holds as a token as
    [encrypted]. Parts that cannot be told apart (a value holding "|") are shown whole
    only to a reader who sees every key field in clear, else as [protected]."""
    if not business_key:
        return ""
    parts = key_parts(business_key, key_fields)
    if parts is None:
        seen = all(shield.clearance.sees(shield.level_of(name)) for name in key_fields)
        return business_key if seen else PROTECTED_TEXT
    return KEY_SEPARATOR_SHOWN.join(
        ENCRYPTED_SHOWN if is_token(part) else str(shield.value(name, part)) for name, part in parts
    )


@dataclass(frozen=True)
class KeySearch:
    """What a search by business key matches, and where it did not look."""

    matches: Q | None  # None: nothing can match
    # Datasets not searched: a typed value is one the reader may neither see nor reveal.
    refused: list[str]


def quarantine_key_search(
    term: str, *, shields: DatasetShields, dataset_ids: Iterable[int] | None = None
) -> KeySearch:
    """Quarantined records whose business key is the one typed, in each dataset that has a key.

    `term` is the key as the list shows it: one value, or the key's values in order
    separated by "|" (spaces around them ignored); fewer values than the key has find
    every key that starts with them. Each dataset's key is made from them as chart makes
    it (chart.business_keys: typed by the contract, a restricted part as its keyed token,
    under every listed hash key), so equality holds without decrypting anything. A
    dataset is searched only when the reader may see or reveal every value typed, as the
    review would show it: nobody probes for values they cannot read. `dataset_ids`
    limits the datasets (a filter, the readable ones).
    """
    parts = [part.strip() for part in term.split(KEY_SEPARATOR)]
    if not all(parts):
        return KeySearch(None, [])
    # Datasets with a key and quarantined records (an index probe each): the search makes
    # each one's key with its evaluator, so the cost follows datasets, never records.
    datasets = (
        Dataset.objects.exclude(business_key=[])
        .filter(Exists(QuarantinedRecord.objects.filter(dataset=OuterRef("pk"))))
        .order_by("pk")
    )
    if dataset_ids is not None:
        datasets = datasets.filter(pk__in=list(dataset_ids))
    conditions: list[Q] = []
    refused: list[str] = []
    for dataset in datasets:
        names = list(dataset.business_key)
        if len(parts) > len(names):
            continue
        values = dict(zip(names, parts, strict=False))
        shield = shields(dataset.pk)
        if not all(_may_search(shield.field(name, value)) for name, value in values.items()):
            refused.append(dataset.slug)
            continue
        keys = KeyMaker(dataset).keys_under_every_hash_key(values, len(parts))
        if not keys:
            continue  # a value that is not of its field's type: no key of this dataset
        if len(parts) == len(names):
            conditions.append(Q(dataset_id=dataset.pk, business_key__in=keys))
        else:
            leading = Q()
            for key in keys:
                leading |= Q(business_key__startswith=key + KEY_SEPARATOR)
            conditions.append(Q(dataset_id=dataset.pk) & leading)
    if not conditions:
        return KeySearch(None, refused)
    matches = conditions[0]
    for condition in conditions[1:]:
        matches |= condition
    return KeySearch(matches, refused)


def _may_search(shown: ShownValue) -> bool:
    """A value the reader would see in clear, or may reveal (a level they are cleared for)."""
    return not shown.masked or shown.revealable
