"""Classification suggestions: PII a run found in fields that have no level yet.

Where enough of a run's values of an unclassified field held PII, the field gets an
open suggestion of a level (the most sensitive its PII types call for, else the most
sensitive there is) for a compliance officer to accept or reject; a rejected
suggestion stands until the evidence really changes.
"""

from collections import defaultdict

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


def raise_classification_suggestions(*, dataset: Dataset, run: Run) -> list:
    """Suggest a level for unclassified fields where this run found PII."""
    fields = {
        f.name: f for f in DatasetField.objects.filter(dataset=dataset, classification__isnull=True)
    }
    if not fields:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT field_name, pii_type, count(DISTINCT raw_record_id),
                   (array_agg(masked_excerpt))[1:3]
              FROM {sql_table(PiiFinding)}
             WHERE run_id = %s AND field_name = ANY(%s)
             GROUP BY field_name, pii_type
            """,
            [run.pk, list(fields)],
        )
        rows = cursor.fetchall()
    scanned = max(run.rows_in, 1)
    by_field: dict[str, dict] = defaultdict(lambda: {"types": {}, "examples": []})
    for name, pii_type, hits, examples in rows:
        by_field[name]["types"][pii_type] = hits
        by_field[name]["examples"].extend(examples)
    default_levels = dict(
        PiiPattern.objects.filter(default_classification__isnull=False).values_list(
            "pii_type", "default_classification"
        )
    )
    raised = []
    for name, evidence in by_field.items():
        hits = max(evidence["types"].values())
        ratio = hits / scanned
        if ratio < SUGGESTION_MIN_HIT_RATIO:
            continue
        types = sorted(evidence["types"])
        level_ids = [default_levels[t] for t in types if t in default_levels]
        level = (
            ClassificationLevel.objects.filter(pk__in=level_ids).order_by("-rank").first()
            or ClassificationLevel.objects.order_by("-rank").first()
        )
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
                "examples": evidence["examples"][:5],
                "evidence_key": evidence_key,
                "run": run,
            },
        )
        raised.append(suggestion)
    return raised
