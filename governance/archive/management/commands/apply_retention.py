from django.core.management.base import BaseCommand

from governance.archive import selectors
from governance.archive.services.retention import apply_retention
from governance.pipeline.models import RunKind, RunStatus
from governance.pipeline.services import create_run


class Command(BaseCommand):
    help = (
        "Apply the retention policies now: archive (export, verify, then drop) or drop every "
        "partition they have expired. --plan only shows what would happen."
    )

    def add_arguments(self, parser):
        parser.add_argument("--plan", action="store_true", help="Show the plan; change nothing.")

    def handle(self, *args, plan, **options):
        self.stdout.write(f"Rule: {selectors.RETENTION_RULE}")
        if plan:
            for item in selectors.retention_plan():
                self.stdout.write(
                    f"{item.table_name} {item.partition_name} "
                    f"[{item.partition.start} .. {item.partition.end}): {item.status}"
                    f"{' (' + item.action + ')' if item.action else ''} — {item.reason}"
                )
            return
        run = create_run(dataset=None, kind=RunKind.ARCHIVE, triggered_by="apply_retention command")
        run = apply_retention(run=run)
        for done in run.detail.get("retired", []):
            verb = "archived" if done.get("object_key") else "dropped"
            self.stdout.write(
                f"{verb} {done['table']} {done['partition']}: {done['rows']} rows"
                + (f" -> {done['object_key']}" if done.get("object_key") else "")
            )
        for kept in run.detail.get("kept", []):
            self.stdout.write(f"kept {kept['table']} {kept['partition']}: {kept['reason']}")
        if run.status != RunStatus.SUCCEEDED:
            self.stderr.write(self.style.ERROR(f"run {run.pk} {run.status}: {run.error}"))
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS(f"run {run.pk} {run.status}"))
