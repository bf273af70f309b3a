"""What a quarantined record's review page and the quarantine list's actions share: the
dismiss form, links to runs, and the report of re-process runs."""

from django import forms
from django.contrib import messages
from django.urls import reverse
from django.utils.html import format_html

from governance.pipeline.models import Run


class DismissForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why these records are not promoted; kept on each record and in the audit log.",
    )


def run_url(run_id: int | None, site_name: str) -> str:
    """The run's page in the admin, or "" for no run."""
    if run_id is None:
        return ""
    return reverse("admin:pipeline_run_change", args=[run_id], current_app=site_name)


def report_runs(request, runs: list[Run], *, site_name: str) -> None:
    """What each re-process run did, as a message: skipped, failed or its counts."""
    for run in runs:
        link = format_html('<a href="{}">run {}</a>', run_url(run.pk, site_name), run.pk)
        if run.status == "skipped":
            messages.warning(
                request, format_html("{} was skipped: {}. Try again shortly.", link, run.error)
            )
        elif run.status == "failed":
            messages.error(request, format_html("{} failed: {}", link, run.error))
        else:
            messages.success(
                request,
                format_html(
                    "{} ({}): {} record(s) re-processed, {} promoted to chart, "
                    "{} still quarantined.",
                    link,
                    run.dataset.slug,
                    run.rows_in,
                    run.rows_promoted,
                    run.rows_quarantined,
                ),
            )
