"""Fixtures of the navigate tests: a dataset with its contract, and a run."""

import pytest

from governance.compliance.models import ClassificationLevel
from governance.pipeline.models import DatasetField, FieldType, Run, RunKind

FIELDS = [
    ("order_id", FieldType.INTEGER, None),
    ("ordered_at", FieldType.DATETIME, None),
    ("order_date", FieldType.DATE, None),
    ("amount", FieldType.DECIMAL, None),
    ("quantity", FieldType.INTEGER, None),
    ("region", FieldType.STRING, "internal"),
    ("customer", FieldType.STRING, "confidential"),
    ("paid", FieldType.BOOLEAN, None),
    ("ssn", FieldType.STRING, "restricted"),
]


@pytest.fixture
def contract(dataset):
    levels = {level.name: level for level in ClassificationLevel.objects.all()}
    for position, (name, data_type, level) in enumerate(FIELDS):
        DatasetField.objects.create(
            dataset=dataset,
            name=name,
            position=position,
            data_type=data_type,
            classification=levels[level] if level else None,
        )
    return dataset


@pytest.fixture
def run(contract):
    return Run.objects.create(dataset=contract, kind=RunKind.PROMOTE_NAVIGATE, triggered_by="test")
