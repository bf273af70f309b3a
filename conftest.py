"""Fixtures shared by every app's tests. Tests run against a real PostgreSQL and Redis."""

import pytest


@pytest.fixture(autouse=True)
def _reference_data(request):
    """Reference data made by migrations, restored after a transactional test flushed it."""
    wants_db = {"db", "transactional_db"} & set(request.fixturenames)
    if not wants_db and request.node.get_closest_marker("django_db") is None:
        return
    request.getfixturevalue("_django_db_helper")  # database access as the test asked for it

    from django.contrib.auth.models import Group

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
