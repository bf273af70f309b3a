"""The weights preview: each dataset's latest score under the weights being typed, before
they are saved; the same rule refuses a bad set; only who may change weights may ask."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from chart.services import promote_to_chart
from governance.quality.models import QualityDimension, QualityScore
from governance.quality.scoring import current_weights, rescore
from governance.quality.services import preview_weights
from governance.quality.tests.test_admin import SHIPPED, stored_weights, weights_post

PREVIEW_URL = "admin:quality_qualitydimension_preview"
# Validity (which the bronze tier fails) weighs less, completeness more.
LESS_VALIDITY = {**SHIPPED, "validity": Decimal("0.0500"), "completeness": Decimal("0.4500")}


@pytest.fixture
def scored(customers, land):
    land(customers, [{"id": "1", "tier": "bronze"}, {"id": "2", "tier": "gold"}])
    promote_to_chart(dataset=customers, triggered_by="test")
    # A later run is the one previewed.
    land(customers, [{"id": "3", "tier": "bronze"}, {"id": "4", "tier": "silver"}])
    run = promote_to_chart(dataset=customers, triggered_by="test")
    return QualityScore.objects.get(run=run)


@pytest.mark.django_db
def test_the_latest_score_of_each_dataset_is_rescored(scored):
    [row] = preview_weights(weights=LESS_VALIDITY)
    assert row["dataset"] == "orders"
    assert row["run"] == scored.run_id
    assert Decimal(row["current"]) == rescore(scored, current_weights())
    assert Decimal(row["proposed"]) == rescore(scored, LESS_VALIDITY)
    assert Decimal(row["proposed"]) > Decimal(row["current"])
    assert Decimal(row["change"]) == Decimal(row["proposed"]) - Decimal(row["current"])
    assert row["threshold"] == "0.9500"
    assert stored_weights() == SHIPPED  # nothing saved


@pytest.mark.django_db
def test_a_dataset_without_scores_is_left_out(dataset):
    assert preview_weights(weights=SHIPPED) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"validity": Decimal("0.3000")}, "sum to exactly 1; they sum to 1.0500"),
        ({"validity": Decimal("-0.0500"), "completeness": Decimal("0.5500")}, "cannot be negative"),
    ],
)
def test_a_bad_set_is_refused_with_the_reason(changes, message):
    with pytest.raises(ValidationError, match=message):
        preview_weights(weights={**SHIPPED, **changes})


@pytest.mark.django_db
def test_the_endpoint_previews_the_posted_formset(client, steward, scored):
    client.force_login(steward)
    response = client.post(reverse(PREVIEW_URL), weights_post(LESS_VALIDITY))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["weights"]["validity"] == "0.0500"
    assert Decimal(body["datasets"][0]["proposed"]) == rescore(scored, LESS_VALIDITY)
    assert stored_weights() == SHIPPED


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"validity": "0.3"}, "they sum to 1.0500"),
        ({"validity": "-0.05", "completeness": "0.55"}, "validity: Ensure this value is greater"),
        ({"validity": "lots"}, "validity: Enter a number."),
    ],
)
def test_the_endpoint_says_why_a_set_is_refused(client, steward, weights, message):
    client.force_login(steward)
    response = client.post(reverse(PREVIEW_URL), weights_post(weights))
    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.django_db
def test_only_those_who_change_weights_may_preview(client, viewer, officer, steward):
    for user in (viewer, officer):
        client.force_login(user)
        assert client.post(reverse(PREVIEW_URL), weights_post(SHIPPED)).status_code == 403
    client.force_login(steward)
    assert client.get(reverse(PREVIEW_URL)).status_code == 405
    page = client.get(reverse("admin:quality_qualitydimension_changelist")).content.decode()
    assert 'id="weights-preview"' in page
    assert "quality/js/weights_preview.js" in page
    assert QualityDimension.objects.count() == 6
