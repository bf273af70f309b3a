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
