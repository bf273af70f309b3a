"""Unique fields: a value held by another current record fails the field's unique rule.

Judging a record needs no database (chart.evaluation); uniqueness does, so it is
judged per chunk, just before the chunk is stored (chart.writing.store_verdicts).
The business key is not judged here: a record whose key arrives again supersedes the
earlier one (chart.supersession).
"""

from chart.evaluation import Verdict
from chart.models import ChartRecord
from governance.pipeline.models import Dataset, DatasetField
from governance.quality.models import RuleKind
from governance.quality.rules import RuleFailure


def unique_field_names(dataset: Dataset) -> list[str]:
    return list(
        DatasetField.objects.filter(dataset=dataset, unique=True).values_list("name", flat=True)
    )


def unique_field_failures(
    dataset: Dataset, verdicts: list[Verdict], unique_fields: list[str]
) -> None:
    """Values of unique fields already held by another current record (or twice here).

    Each clash is added to its verdict's failures. Compared by their keyed tokens, which
    every unique field has whatever its level: an encrypted value differs at each
    encryption, its token does not.
    """
    for name in unique_fields:
        seen: dict[str, Verdict] = {}
        candidates = [v for v in verdicts if not v.holds_back and name in v.unique_values]
        values = {v.unique_values[name] for v in candidates}
        if not values:
            continue
        taken_values = dict(
            ChartRecord.objects.filter(dataset=dataset, is_current=True)
            .filter(**{f"tokens__{name}__in": list(values)})
            .values_list(f"tokens__{name}", "business_key")
        )
        for verdict in candidates:
            value = verdict.unique_values[name]
            # The same business key is a newer version of that record, not a duplicate;
            # records without a business key are never versions of each other.
            key = verdict.business_key
            clash = (value in taken_values and (not key or taken_values[value] != key)) or (
                value in seen and (not key or seen[value].business_key != key)
            )
            if clash:
                verdict.failures.append(
                    RuleFailure(name, RuleKind.UNIQUE, "another record already holds this value")
                )
            seen[value] = verdict
