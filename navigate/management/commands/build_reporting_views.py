"""manage.py build_reporting_views: drop and create every view of the `reporting` schema.

Also run after every `migrate` (NavigateConfig) and after each change to a contract, a
classification level, a dataset's reader groups or a metric (orchestration.reactions);
run it by hand after restoring a database. Run it as the role that owns the schema.
"""

from django.core.management.base import BaseCommand, CommandError

from navigate.reporting import ReportingBuildError, build_reporting_views


class Command(BaseCommand):
    help = "Rebuild the typed BI views of the reporting schema from contracts and metrics."

    def add_arguments(self, parser):
        parser.add_argument("--database", default="default", help="Django database alias")

    def handle(self, *args, database, **options):
        try:
            built = build_reporting_views(using=database)
        except ReportingBuildError as error:
            raise CommandError(f"reporting views not rebuilt: {error}") from error
        self.stdout.write(f"{len(built.views)} reporting views built.")
        if built.limited_datasets:
            self.stdout.write(
                "Left out, limited to reader groups: " + ", ".join(built.limited_datasets) + "."
            )
