from django.urls import reverse

from governance.compliance.models import AuditLog
from governance.pipeline.models import Run, RunKind, RunStatus


def test_steward_queues_a_promotion_from_the_dataset_list(client, steward, dataset):
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
