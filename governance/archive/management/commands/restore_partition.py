from django.core.management.base import BaseCommand, CommandError

from governance.archive.services.ddl import ArchiveError
from governance.archive.services.restore import restore_partition


class Command(BaseCommand):
    help = (
        "Bring an archived partition back from object storage, verified against its manifest "
        "(sha256 and row count), in one transaction. Example: restore_partition "
        "explore.raw_record 2024-01"
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "table", help="explore.raw_record, navigate.fact or compliance.audit_log"
        )
        parser.add_argument(
            "range",
            help="the period's start (2024-01-01), a month (2024-01), a quarter (2024-Q1), "
            "a year (2024) or the partition name (raw_record_2024_01)",
        )
        parser.add_argument(
            "--actor", default="restore_partition command", help="who asked, for the audit log"
        )

    def handle(self, *args, table, range, actor, **options):
        try:
            manifest = restore_partition(table=table, range_text=range, actor=actor)
        except ArchiveError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {manifest.partition_name}: {manifest.row_count} rows from "
                f"{manifest.object_key} (sha256 {manifest.sha256} verified)."
            )
        )
