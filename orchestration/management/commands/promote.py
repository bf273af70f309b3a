from django.core.management.base import BaseCommand, CommandError

from chart.services import promote_to_chart
from governance.pipeline.models import Dataset, Layer, RunStatus
from governance.pipeline.services import request_promotion
from navigate.services import promote_to_navigate


class Command(BaseCommand):
    help = (
        "Promote a dataset's new raw records to chart, and on to navigate. Runs here and "
        "prints each run; with --queue, hands the work to a Celery worker instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="The dataset's slug.")
        parser.add_argument(
            "--to",
            choices=[Layer.CHART, Layer.NAVIGATE],
            default=Layer.NAVIGATE,
            help="How far to promote (default: navigate).",
        )
        parser.add_argument(
            "--queue", action="store_true", help="Queue the promotion for a worker and return."
        )

    def handle(self, *args, dataset, to, queue, **options):
        try:
            target = Dataset.objects.get(slug=dataset)
        except Dataset.DoesNotExist:
            known = ", ".join(Dataset.objects.values_list("slug", flat=True)[:20]) or "none yet"
            raise CommandError(f"No dataset {dataset!r}. Known datasets: {known}.") from None
        if queue:
            run = request_promotion(dataset=target, triggered_by="command line", to_layer=to)
            self.stdout.write(f"Queued run {run.pk}: promotion of {target.slug} to {to}.")
            return
        run = promote_to_chart(dataset=target, triggered_by="command line")
        self._report(run)
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"The promotion to chart did not succeed: {run.error}")
        if to == Layer.NAVIGATE:
            run = promote_to_navigate(dataset=target, triggered_by="command line")
            self._report(run)
            if run.status != RunStatus.SUCCEEDED:
                raise CommandError(f"The promotion to navigate did not succeed: {run.error}")

    def _report(self, run):
        style = self.style.SUCCESS if run.status == RunStatus.SUCCEEDED else self.style.WARNING
        self.stdout.write(
            style(
                f"Run {run.pk} ({run.get_kind_display()}): {run.status}; in {run.rows_in}, "
                f"promoted {run.rows_promoted}, quarantined {run.rows_quarantined}"
                + (f"; {run.error}" if run.error else "")
            )
        )
