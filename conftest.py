"""Fixtures shared by every app's tests. Tests run against a real PostgreSQL and Redis."""

import hashlib
import json
import uuid

import pytest


@pytest.fixture(autouse=True)
def _reference_data(request):
    """Reference data made by migrations, restored after a transactional test flushed it."""
    wants_db = {"db", "transactional_db"} & set(request.fixturenames)
    if not wants_db and request.node.get_closest_marker("django_db") is None:
        return
    request.getfixturevalue("_django_db_helper")  # database access as the test asked for it

    from django.contrib.auth.models import Group

    from governance.compliance.clearance import grant_default_clearances
    from governance.compliance.models import ClassificationLevel
    from governance.compliance.reference_data import ensure_reference_data
    from governance.compliance.roles import ensure_roles
    from governance.quality.models import QualityDimension
    from governance.quality.reference_data import ensure_dimensions

    if not QualityDimension.objects.exists():
        ensure_dimensions()
    if not ClassificationLevel.objects.exists():
        ensure_reference_data()
    if not Group.objects.exists():
        ensure_roles()
        grant_default_clearances()


def make_user(django_user_model, username: str, group: str | None = None, **extra):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(
        username=username, password="correct-horse-battery", is_staff=True, **extra
    )
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def steward(db, django_user_model):
    from governance.compliance.roles import DATA_STEWARD

    return make_user(django_user_model, "steward", DATA_STEWARD)


@pytest.fixture
def officer(db, django_user_model):
    from governance.compliance.roles import COMPLIANCE_OFFICER

    return make_user(django_user_model, "officer", COMPLIANCE_OFFICER)


@pytest.fixture
def viewer(db, django_user_model):
    from governance.compliance.roles import VIEWER

    return make_user(django_user_model, "viewer", VIEWER)


@pytest.fixture
def superuser(db, django_user_model):
    return django_user_model.objects.create_superuser(
        username="root-admin", password="correct-horse-battery", email="admin@example.com"
    )


@pytest.fixture
def dataset(db):
    from governance.pipeline.models import Dataset

    return Dataset.objects.create(slug="orders", name="Orders", business_key=["order_id"])


@pytest.fixture
def land(db):
    """Land payloads (dicts, or strings for lines that did not parse) as a batch."""

    from django.utils import timezone

    from explore.models import LandingBatch, RawRecord

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
        records = RawRecord.objects.bulk_create(records)
        # As a load leaves it: the batch's raw id range (explore.selectors.raw_records_of).
        LandingBatch.objects.filter(pk=batch.pk).update(
            first_raw_id=min((record.pk for record in records), default=None),
            last_raw_id=max((record.pk for record in records), default=None),
        )
        return records

    return _land


@pytest.fixture
def customers(dataset):
    """A small contract: id, email, tier, amount, ssn (restricted), notes."""
    from governance.compliance.models import ClassificationLevel
    from governance.pipeline.models import DatasetField

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


# Browser fixtures (browser_login, screenshot) and the system-Chromium launch options; an S3
# peer (moto_endpoint, s3_storage).
pytest_plugins = ["atlas_site.testing.browser", "atlas_site.testing.s3"]
