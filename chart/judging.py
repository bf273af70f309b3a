"""The evaluator of a dataset, built from the database as it is now.

A `RecordEvaluator` (chart.evaluation) judges records without touching the database;
this is where it gets what it needs, once per run: the compiled contract, the record
rules, the PII patterns, each field's protection from its classification level, and
the keyrings.
"""

from django.utils import timezone

from chart.contract import CompiledContract
from chart.evaluation import FieldProtection, RecordEvaluator
from chart.uniqueness import unique_field_names
from governance.compliance.keys import Keyring
from governance.compliance.models import PiiPattern
from governance.compliance.pii.scanner import load_patterns
from governance.compliance.tokens import TokenKeyring
from governance.pipeline.models import Dataset, DatasetField, FieldType
from governance.quality.models import QualityRule, RuleKind, RuleOrigin
from governance.quality.rules import RecordRuleCheck


def field_protections(dataset: Dataset) -> dict[str, FieldProtection]:
    fields = DatasetField.objects.filter(dataset=dataset).select_related("classification")
    return {
        f.name: FieldProtection(
            name=f.name,
            level_name=f.classification.name if f.classification else None,
            rank=f.classification.rank if f.classification else None,
            requires_encryption=bool(f.classification and f.classification.requires_encryption),
            masking=f.classification.masking if f.classification else "none",
            free_text=f.data_type == FieldType.STRING,
        )
        for f in fields
    }


def build_evaluator(dataset: Dataset, rules: list[QualityRule]) -> RecordEvaluator:
    protections = field_protections(dataset)
    now = timezone.now()
    # Contract rules other than freshness are judged by the contract check itself;
    # uniqueness needs the database and is judged per chunk.
    record_rules = [
        RecordRuleCheck(rule=rule, now=now)
        for rule in rules
        if (rule.origin == RuleOrigin.STEWARD or rule.kind == RuleKind.FRESHNESS)
        and rule.kind != RuleKind.UNIQUE
    ]
    return RecordEvaluator(
        dataset_id=dataset.pk,
        contract=CompiledContract.for_dataset(dataset),
        record_rules=record_rules,
        patterns=load_patterns(),
        protections=protections,
        business_key=list(dataset.business_key),
        # Both always: PII may turn up in any free-text field and must be sealed.
        keyring=Keyring.from_settings(),
        tokens=TokenKeyring.from_settings(),
        expected_rank=dict(
            PiiPattern.objects.filter(default_classification__isnull=False).values_list(
                "pk", "default_classification__rank"
            )
        ),
        unique_fields=unique_field_names(dataset),
        country=dataset.country,
        field_countries=dict(
            DatasetField.objects.filter(dataset=dataset)
            .exclude(country="")
            .values_list("name", "country")
        ),
    )
