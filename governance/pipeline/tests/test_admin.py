from django.urls import reverse

from governance.compliance.models import AuditLog
from governance.pipeline.models import Run, RunKind, RunStatus


def test_steward_queues_a_promotion_from_the_dataset_list(client, steward, dataset, land):
    land(dataset, [{"order_id": "1"}])
    client.force_login(steward)
    response = client.post(
        reverse("admin:pipeline_dataset_changelist"),
        {"action": "promote_now", "_selected_action": [dataset.pk]},
        follow=True,
    )
    run = Run.objects.get(dataset=dataset)
    assert (run.kind, run.status, run.started_by) == (
        RunKind.PROMOTE_CHART,
        RunStatus.QUEUED,
        steward,
    )
    assert f"Queued run {run.pk} (orders)" in response.content.decode()
    assert AuditLog.objects.filter(object_type="pipeline.run", object_id=str(run.pk)).exists()


def test_viewer_is_not_offered_the_promotion(client, viewer, dataset):
    client.force_login(viewer)
    response = client.get(reverse("admin:pipeline_dataset_changelist"))
    assert response.status_code == 200
    assert "promote_now" not in response.content.decode()
    client.post(
        reverse("admin:pipeline_dataset_changelist"),
        {"action": "promote_now", "_selected_action": [dataset.pk]},
    )
    assert not Run.objects.exists()


def test_the_dataset_list_tells_each_datasets_state_and_filters_by_it(
    client, steward, dataset, django_assert_max_num_queries
):
    from datetime import timedelta

    from django.utils import timezone

    from governance.pipeline.models import Dataset

    fresh = Dataset.objects.create(slug="fresh", name="Fresh")
    Run.objects.create(
        dataset=fresh, kind=RunKind.INGEST, status=RunStatus.SUCCEEDED, triggered_by="test"
    )
    failed = Run.objects.create(
        dataset=dataset, kind=RunKind.PROMOTE_CHART, status=RunStatus.FAILED, triggered_by="t"
    )
    Run.objects.filter(pk=failed.pk).update(created_at=timezone.now() - timedelta(days=2))
    client.force_login(steward)
    url = reverse("admin:pipeline_dataset_changelist")
    html = client.get(url).content.decode()
    assert "Last run" in html and "Quality (threshold)" in html and "Open quarantine" in html
    assert '<strong class="atlas-failing">Failed (' in html
    assert "not scored yet" in html

    def slugs(**params) -> set[str]:
        page = client.get(url, params).content.decode()
        return {slug for slug in ("orders", "fresh") if f">{slug}</a>" in page}

    assert slugs() == {"orders", "fresh"}
    assert slugs(state="failing") == {"orders"}
    assert slugs(state="stale") == {"orders"}  # its only run failed: nothing loaded
    assert slugs(state="below_threshold") == set()
    assert slugs(state="quarantine") == set()
    assert client.get(url, {"state": "nonsense"}).status_code == 200
    # A page of many datasets costs the same few queries.
    for number in range(40):
        Dataset.objects.create(slug=f"more-{number:02d}", name=f"More {number}")
    with django_assert_max_num_queries(20):
        assert client.get(url).status_code == 200


def test_the_dataset_form_refuses_a_key_that_is_not_a_field(client, steward):
    from atlas_site.tests.test_admin_pages import admin_url, dataset_form
    from governance.pipeline.models import Dataset

    client.force_login(steward)
    field = {
        "fields-TOTAL_FORMS": "1",
        "fields-0-position": "1",
        "fields-0-name": "customer_id",
        "fields-0-data_type": "integer",
        "fields-0-allowed_values": "",
        "fields-0-pattern": "",
    }
    response = client.post(
        admin_url(Dataset, "add"),
        dataset_form(business_key="customer_no", event_time_field="updated_at", **field),
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Business key: &#x27;customer_no&#x27; is not a field of the contract" in html
    assert "Event time field: &#x27;updated_at&#x27; is not a field of the contract" in html
    assert not Dataset.objects.exists()
    # Named in the same save: accepted.
    response = client.post(admin_url(Dataset, "add"), dataset_form(**field))
    assert response.status_code == 302
    assert Dataset.objects.get().business_key == ["customer_id"]


def test_removing_the_field_the_business_key_names_is_refused(client, steward, dataset):
    from atlas_site.tests.test_admin_pages import admin_url, dataset_form
    from governance.pipeline.models import DatasetField

    key = DatasetField.objects.create(dataset=dataset, name="order_id", data_type="integer")
    client.force_login(steward)
    data = dataset_form(
        slug="orders",
        name="Orders",
        business_key="order_id",
        **{
            "fields-TOTAL_FORMS": "1",
            "fields-INITIAL_FORMS": "1",
            "fields-0-id": str(key.pk),
            "fields-0-dataset": str(dataset.pk),
            "fields-0-position": "0",
            "fields-0-name": "order_id",
            "fields-0-data_type": "integer",
            "fields-0-allowed_values": "",
            "fields-0-pattern": "",
            "fields-0-DELETE": "on",
        },
    )
    response = client.post(admin_url(type(dataset), "change", dataset.pk), data)
    assert response.status_code == 200
    assert "Business key: &#x27;order_id&#x27; is not a field" in response.content.decode()
    assert DatasetField.objects.filter(pk=key.pk).exists()


def test_the_dataset_page_shows_values_as_written(client, steward, dataset):
    from datetime import timedelta
    from decimal import Decimal

    from atlas_site.tests.test_admin_pages import admin_url
    from governance.pipeline.models import DatasetField

    dataset.freshness_target = timedelta(days=7)
    dataset.quality_threshold = Decimal("0.95")
    dataset.save()
    DatasetField.objects.create(
        dataset=dataset,
        name="amount",
        data_type="decimal",
        minimum=Decimal("0"),
        maximum=Decimal("10000.5"),
    )
    client.force_login(steward)
    html = client.get(admin_url(type(dataset), "change", dataset.pk)).content.decode()
    assert 'name="freshness_target" value="P7D"' in html
    assert 'name="quality_threshold" value="0.95"' in html
    assert 'value="10000.5"' in html and "10000.5000000000" not in html
    assert 'name="fields-0-minimum" value="0"' in html and "0E-10" not in html


def test_formats_write_values_as_people_do():
    from datetime import timedelta
    from decimal import Decimal

    from atlas_site.formats import iso_duration, plain_decimal

    assert iso_duration(timedelta(days=7)) == "P7D"
    assert iso_duration(timedelta(hours=-6)) == "-PT6H"
    assert plain_decimal(Decimal("0E-10")) == "0"
    assert plain_decimal(Decimal("10000.5000000000")) == "10000.5"
    assert plain_decimal(Decimal("1E+3")) == "1000"
    assert plain_decimal(Decimal("-0.0500")) == "-0.05"


def test_promotion_has_work_only_for_what_is_new(customers, land):
    from chart.services import promote_to_chart
    from navigate.models import MetricDefinition
    from navigate.services import promote_to_navigate
    from orchestration.pending import has_work_to_promote

    assert not has_work_to_promote(dataset=customers)
    land(customers, [{"id": "1", "email": "a@example.com", "tier": "gold"}])
    assert has_work_to_promote(dataset=customers)  # a raw record above the watermark
    promote_to_chart(dataset=customers, triggered_by="test")
    assert has_work_to_promote(dataset=customers)  # a chart record not in the facts
    promote_to_navigate(dataset=customers, triggered_by="test")
    assert not has_work_to_promote(dataset=customers)
    MetricDefinition.objects.create(
        dataset=customers,
        slug="by-tier",
        name="By tier",
        aggregation="count",
        time_field="signup",
        dimension_fields=["tier"],
    )
    assert has_work_to_promote(dataset=customers)  # a metric with no facts yet
