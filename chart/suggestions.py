"""Classification suggestions: PII a run found in fields that have no level yet.

Where enough of a run's values of an unclassified field held PII (values, whatever the
type: a field where 71% of values held an email or a phone has a ratio of 0.71, and the
counts by type beside it), the field gets an
open suggestion of a level (the most sensitive its PII types call for, else the most
sensitive there is) for a compliance officer to accept or reject; a rejected
suggestion stands until the evidence really changes.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection

from atlas_site.schemas import sql_table
from chart.models import PiiFinding
from governance.compliance.models import (
    ClassificationLevel,
    ClassificationSuggestion,
    PiiPattern,
    SuggestionStatus,
)
from governance.pipeline.models import Dataset, DatasetField, Run

SUGGESTION_MIN_HIT_RATIO = 0.05
EXAMPLES = 5  # masked excerpts kept per suggestion, taken in turn from each type


@dataclass
class FieldEvidence:
    """What a run found in one unclassified field."""

    values_with_pii: int = 0  # values holding any PII: the hit ratio's numerator
    hits_by_type: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)  # masked, by type

    def typed_examples(self) -> list[dict[str, str]]:
        """Up to EXAMPLES excerpts, each naming its type, every type's first ones first."""
        chosen: list[dict[str, str]] = []
        for rank in range(EXAMPLES):
            for pii_type in sorted(self.examples):
                excerpts = self.examples[pii_type]
                if rank < len(excerpts) and len(chosen) < EXAMPLES:
                    chosen.append({"pii_type": pii_type, "excerpt": excerpts[rank]})
        return chosen


def suggested_level(pii_types: Iterable[str]) -> ClassificationLevel | None:
    """The level suggested for a field holding these PII types: the most sensitive their
    patterns call for (`PiiPattern.default_classification`), else the most sensitive
    there is. Also what a contract inferred from a sample proposes (chart.inference)."""
    called_for = PiiPattern.objects.filter(
        pii_type__in=list(pii_types), default_classification__isnull=False
    ).values("default_classification")
    return (
        ClassificationLevel.objects.filter(pk__in=called_for).order_by("-rank").first()
        or ClassificationLevel.objects.order_by("-rank").first()
    )


def raise_classification_suggestions(*, dataset: Dataset, run: Run) -> list:
    """Suggest a level for unclassified fields where this run found PII."""
    fields = {
        f.name: f for f in DatasetField.objects.filter(dataset=dataset, classification__isnull=True)
    }
    if not fields:
        return []
    # Per field and type, and per field whatever the type (pii_type NULL): a value holding
    # two types counts once for the field, so the ratio is of values that held PII.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT field_name, pii_type, count(DISTINCT raw_record_id),
                   (array_agg(masked_excerpt))[1:%s]
              FROM {sql_table(PiiFinding)}
             WHERE run_id = %s AND field_name = ANY(%s)
             GROUP BY GROUPING SETS ((field_name, pii_type), (field_name))
             ORDER BY field_name, pii_type
            """,
            [EXAMPLES, run.pk, list(fields)],
        )
        rows = cursor.fetchall()
    scanned = max(run.rows_in, 1)
    by_field: dict[str, FieldEvidence] = defaultdict(FieldEvidence)
    for name, pii_type, hits, examples in rows:
        evidence = by_field[name]
        if pii_type is None:
            evidence.values_with_pii = hits
        else:
            evidence.hits_by_type[pii_type] = hits
            evidence.examples[pii_type] = list(examples)
    raised = []
    for name, evidence in by_field.items():
        hits = evidence.values_with_pii
        ratio = hits / scanned
        if ratio < SUGGESTION_MIN_HIT_RATIO:
            continue
        types = sorted(evidence.hits_by_type)
        level = suggested_level(types)
        # Tenths of hit ratio: a rejection stands until the evidence really changes.
        evidence_key = f"{','.join(types)}@{int(ratio * 10)}"
        field_obj = fields[name]
        rejected = ClassificationSuggestion.objects.filter(
            dataset_field=field_obj, status=SuggestionStatus.REJECTED, evidence_key=evidence_key
        ).exists()
        if rejected:
            continue
        suggestion, _ = ClassificationSuggestion.objects.update_or_create(
            dataset_field=field_obj,
            status=SuggestionStatus.OPEN,
            defaults={
                "suggested_level": level,
                "pii_types": types,
                "values_scanned": scanned,
                "values_with_pii": hits,
                "hits_by_type": evidence.hits_by_type,
                "examples": evidence.typed_examples(),
                "evidence_key": evidence_key,
                "run": run,
            },
        )
        raised.append(suggestion)
    return raised
