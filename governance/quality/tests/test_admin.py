"""Quality dimension weights: never negative, always summing to 1, set together,
audited; in the service and on the admin's changelist."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.urls import reverse

from governance.compliance.models import AuditLog
from governance.quality.models import QualityDimension
from governance.quality.services import set_weights, validate_weights

CHANGELIST = "admin:quality_qualitydimension_changelist"

SHIPPED = {
    "completeness": Decimal("0.2500"),
    "validity": Decimal("0.2500"),
    "accuracy": Decimal("0.1500"),
    "consistency": Decimal("0.1500"),
    "uniqueness": Decimal("0.1000"),
    "timeliness": Decimal("0.1000"),
}


def stored_weights() -> dict[str, Decimal]:
    return dict(QualityDimension.objects.values_list("code", "weight"))


def weights_post(weights: dict[str, str | Decimal]) -> dict:
    """The changelist's formset as the browser posts it (rows in the list's order)."""
    dimensions = list(QualityDimension.objects.order_by("code", "-pk"))
    data = {
        "form-TOTAL_FORMS": str(len(dimensions)),
        "form-INITIAL_FORMS": str(len(dimensions)),
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for index, dimension in enumerate(dimensions):
        data[f"form-{index}-id"] = str(dimension.pk)
        data[f"form-{index}-weight"] = str(weights.get(dimension.code, dimension.weight))
    return data


# --- The rule ----------------------------------------------------------------------------


def test_the_shipped_weights_are_valid():
    validate_weights(SHIPPED)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timeliness": Decimal("-0.1"), "uniqueness": Decimal("0.3")}, "cannot be negative"),
        ({"timeliness": Decimal("0.2")}, "must sum to exactly 1; they sum to 1.1000"),
        ({"timeliness": Decimal("0.05")}, "they sum to 0.9500"),
        ({"timeliness": Decimal("1.5")}, "at most 1"),
        ({"timeliness": Decimal("0.10001")}, "more than 4 decimal places"),
    ],
)
def test_validate_weights_refuses_with_the_reason(changes, message):
    with pytest.raises(ValidationError) as error:
        validate_weights({**SHIPPED, **changes})
    assert message in " ".join(error.value.messages)


def test_validate_weights_wants_all_six_and_nothing_else():
    partial = dict(SHIPPED)
    del partial["timeliness"]
    with pytest.raises(ValidationError, match="missing: timeliness"):
        validate_weights(partial)
    with pytest.raises(ValidationError, match="unknown: speed"):
        validate_weights({**SHIPPED, "speed": Decimal(0)})


@pytest.mark.django_db
def test_set_weights_saves_the_set_and_audits_each_change(steward):
    new = {**SHIPPED, "timeliness": Decimal("0.2"), "uniqueness": Decimal("0")}
    changed = set_weights(weights=new, actor=steward)

    assert {dimension.code for dimension in changed} == {"timeliness", "uniqueness"}
    assert stored_weights() == new
    timeliness = QualityDimension.objects.get(code="timeliness")
    entry = AuditLog.objects.get(object_type="quality.qualitydimension", object_id=timeliness.pk)
    assert entry.action == "update"
    assert entry.actor == "steward"
    assert entry.before["weight"] == "0.1000"
    assert entry.after["weight"] == "0.2000"
    assert "timeliness=0.2" in entry.detail
    assert AuditLog.objects.filter(object_type="quality.qualitydimension").count() == 2


@pytest.mark.django_db
def test_set_weights_refuses_a_bad_set_and_changes_nothing(steward):
    with pytest.raises(ValidationError, match=r"sum to 1\.0500"):
        set_weights(weights={**SHIPPED, "timeliness": Decimal("0.15")}, actor=steward)
    assert stored_weights() == SHIPPED
    assert not AuditLog.objects.exists()


@pytest.mark.django_db
def test_set_weights_has_the_database_check_the_sum_before_returning(steward, monkeypatch):
    # Were the Python rule ever bypassed, the deferred trigger still refuses, at once.
    monkeypatch.setattr("governance.quality.services.validate_weights", lambda weights: None)
    with pytest.raises(IntegrityError, match="must sum to 1"):
        set_weights(weights={**SHIPPED, "timeliness": Decimal("0.5")}, actor=steward)
    assert stored_weights() == SHIPPED


# --- The admin ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_changelist_lists_all_six_with_their_sum(client, steward):
    client.force_login(steward)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 6
    assert response.context["cl"].formset is not None
    assert "they sum to <strong>1.0000</strong> now" in response.content.decode()


@pytest.mark.django_db
def test_a_negative_weight_is_refused(client, steward):
    client.force_login(steward)
    response = client.post(
        reverse(CHANGELIST),
        weights_post({"timeliness": "-0.1000", "uniqueness": "0.3000"}),
    )
    assert response.status_code == 200
    assert "greater than or equal to 0" in response.content.decode()
    assert stored_weights() == SHIPPED
    # (Logging in is audited too: only weight changes matter here.)
    assert not AuditLog.objects.filter(object_type="quality.qualitydimension").exists()


@pytest.mark.django_db
def test_a_set_not_summing_to_one_is_refused_showing_its_sum(client, steward):
    client.force_login(steward)
    response = client.post(reverse(CHANGELIST), weights_post({"timeliness": "0.3000"}))
    assert response.status_code == 200
    errors = response.context["cl"].formset.non_form_errors()
    assert errors == ["The weights must sum to exactly 1; they sum to 1.2000."]
    assert "they sum to 1.2000" in response.content.decode()
    assert stored_weights() == SHIPPED
    # (Logging in is audited too: only weight changes matter here.)
    assert not AuditLog.objects.filter(object_type="quality.qualitydimension").exists()


@pytest.mark.django_db
def test_a_valid_set_is_saved_and_audited_with_before_and_after(client, steward):
    client.force_login(steward)
    response = client.post(
        reverse(CHANGELIST),
        weights_post({"completeness": "0.3000", "accuracy": "0.1000"}),
    )
    assert response.status_code == 302
    assert stored_weights() == {
        **SHIPPED,
        "completeness": Decimal("0.3"),
        "accuracy": Decimal("0.1"),
    }
    entries = {
        entry.object_repr: entry
        for entry in AuditLog.objects.filter(object_type="quality.qualitydimension")
    }
    assert set(entries) == {"Completeness", "Accuracy"}
    assert entries["Completeness"].before["weight"] == "0.2500"
    assert entries["Completeness"].after["weight"] == "0.3000"
    assert entries["Accuracy"].before["weight"] == "0.1500"
    assert entries["Accuracy"].after["weight"] == "0.1000"
    assert all(entry.actor == "steward" for entry in entries.values())


@pytest.mark.django_db
def test_only_stewards_change_weights(client, viewer, officer):
    for user in (viewer, officer):
        client.force_login(user)
        assert client.get(reverse(CHANGELIST)).context["cl"].formset is None
        response = client.post(
            reverse(CHANGELIST), weights_post({"completeness": "0.3", "accuracy": "0.1"})
        )
        assert response.status_code == 403
    assert stored_weights() == SHIPPED


@pytest.mark.django_db
def test_the_change_form_leaves_the_weight_alone(client, steward):
    dimension = QualityDimension.objects.get(code="timeliness")
    client.force_login(steward)
    url = reverse("admin:quality_qualitydimension_change", args=[dimension.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert "weight" not in page.context["adminform"].form.fields

    response = client.post(url, {"description": "On time.", "weight": "0.9"})
    assert response.status_code == 302
    dimension.refresh_from_db()
    assert dimension.description == "On time."
    assert dimension.weight == Decimal("0.1")
    entry = AuditLog.objects.get(object_type="quality.qualitydimension")
    assert entry.after["description"] == "On time."
    assert "weight" not in entry.after


@pytest.mark.django_db
def test_dimensions_are_neither_added_nor_deleted(client, superuser):
    dimension = QualityDimension.objects.get(code="timeliness")
    client.force_login(superuser)
    assert client.get(reverse("admin:quality_qualitydimension_add")).status_code == 403
    url = reverse("admin:quality_qualitydimension_delete", args=[dimension.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert QualityDimension.objects.count() == 6
