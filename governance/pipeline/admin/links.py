"""Links between the pipeline's admin pages, shared by the dataset page's views."""

from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from governance.pipeline.models import Dataset, Run


def dataset_page_redirect(dataset: Dataset, *, current_app: str) -> HttpResponseRedirect:
    """Back to the dataset's page (after promoting, retrying or creating it)."""
    return HttpResponseRedirect(
        reverse("admin:pipeline_dataset_change", args=[dataset.pk], current_app=current_app)
    )


def run_link(run: Run, *, current_app: str) -> str:
    """'run 42', linked to the run's page."""
    url = reverse("admin:pipeline_run_change", args=[run.pk], current_app=current_app)
    return format_html('<a href="{}">run {}</a>', url, run.pk)
