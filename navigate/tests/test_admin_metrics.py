"""A metric definition refused through the admin's form, not only by its clean()."""

import pytest
from django.urls import reverse

from navigate.models import MetricDefinition

pytestmark = pytest.mark.django_db

ADD = "admin:navigate_metricdefinition_add"


def form(contract, **fields) -> dict[str, str]:
    return {
        "slug": "m",
        "name": "M",
        "dataset": str(contract.pk),
        "aggregation": "count",
        "value_field": "",
        "time_field": "ordered_at",
        "grain": "day",
        "dimension_fields": "",
        "is_active": "on",
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            {"aggregation": "sum", "value_field": "ssn"},
            "&#x27;ssn&#x27; is classified restricted; its values are encrypted, so a sum "
            "cannot use them",
        ),
        (
            {"time_field": "ssn"},
            "&#x27;ssn&#x27; is classified restricted; its values are encrypted and cannot "
            "place records in periods.",
        ),
        (
            {"dimension_fields": "region,ssn"},
            "&#x27;ssn&#x27; is classified restricted; facts never carry restricted values.",
        ),
    ],
)
def test_the_admin_form_refuses_a_metric_over_encrypted_values(
    client, steward, contract, fields, error
):
    client.force_login(steward)
    response = client.post(reverse(ADD), form(contract, **fields))
    assert response.status_code == 200  # the form again, with the error beside the field
    assert error in response.content.decode()
    assert not MetricDefinition.objects.exists()


def test_the_admin_form_saves_a_distinct_count_of_an_encrypted_field(client, steward, contract):
    client.force_login(steward)
    response = client.post(
        reverse(ADD), form(contract, aggregation="distinct_count", value_field="ssn")
    )
    assert response.status_code == 302
    assert MetricDefinition.objects.get().value_field == "ssn"
