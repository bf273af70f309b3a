import hashlib
import json
import uuid

import pytest
from django.utils import timezone

from explore.models import LandingBatch, RawRecord
from governance.compliance.models import ClassificationLevel
from governance.pipeline.models import DatasetField


@pytest.fixture
def land(db):
    """Land payloads (dicts, or strings for lines that did not parse) as a batch."""

    def _land(dataset, rows):
        content = json.dumps(rows, default=str).encode()
        batch = LandingBatch.objects.create(
            key=uuid.uuid4(),
            dataset=dataset,
            sha256=hashlib.sha256(content + uuid.uuid4().bytes).hexdigest(),
            format="jsonl",
            received_at=timezone.now(),
            status="loaded",
            rows_total=len(rows),
        )
        records = []
        for line, row in enumerate(rows, start=1):
            parsed = isinstance(row, dict)
            records.append(
                RawRecord(
                    received_at=batch.received_at,
                    batch=batch,
                    dataset=dataset,
                    line_number=line,
                    payload=row if parsed else None,
                    raw_text=json.dumps(row) if parsed else row,
                    parse_error="" if parsed else "Expecting value: line 1 column 1 (char 0)",
                )
            )
        return RawRecord.objects.bulk_create(records)

    return _land


@pytest.fixture
def customers(dataset):
    """A small contract: id, email, tier, amount, ssn (restricted), notes."""
    restricted = ClassificationLevel.objects.get(name="restricted")
    confidential = ClassificationLevel.objects.get(name="confidential")
    dataset.business_key = ["id"]
    dataset.save()
    specs = [
        {"name": "id", "data_type": "integer", "required": True},
        {"name": "email", "data_type": "email", "classification": confidential},
        {"name": "tier", "data_type": "enum", "allowed_values": ["gold", "silver"]},
        {"name": "amount", "data_type": "decimal", "minimum": 0},
        {"name": "ssn", "data_type": "string", "classification": restricted},
        {"name": "signup", "data_type": "date"},
        {"name": "notes", "data_type": "string"},
    ]
    for position, spec in enumerate(specs):
        DatasetField.objects.create(dataset=dataset, position=position, **spec)
    return dataset
