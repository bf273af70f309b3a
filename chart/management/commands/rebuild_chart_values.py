from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chart.reprotect import RebuildProgress, legacy_records, rebuild_legacy_records
from governance.pipeline.models import Dataset


class Command(BaseCommand):
    help = (
        "Turn chart records stored before Atlas kept typed values (protection_version 1, "
        "values masked at promotion) typed again from explore: values of encrypting levels "
        "as ciphertext with tokens. Chunk by chunk, each committed: stop it at any time and "
        "run it again to go on. A record whose raw record was archived out of explore keeps "
        "its masked values (its encrypted ones get their tokens) and is reported."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", metavar="SLUG", help="Only this dataset.")
        parser.add_argument("--batch-size", type=int, default=1000, help="Records per chunk.")

    def handle(self, *args, dataset, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        chosen = None
        if dataset:
            chosen = Dataset.objects.filter(slug=dataset).first()
            if chosen is None:
                raise CommandError(f"no dataset {dataset!r}")
        if not (legacy_records().filter(dataset=chosen) if chosen else legacy_records()).exists():
            self.stdout.write(self.style.SUCCESS("No legacy chart records left: nothing to do."))
            return
        report = rebuild_legacy_records(
            dataset=chosen, batch_size=batch_size, progress=self._progress
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Rebuilt {report.rebuilt} chart records as typed values from explore"
                + (f"; {report.superseded} superseded by a later line" if report.superseded else "")
                + "."
            )
        )
        if report.archived:
            self.stdout.write(
                self.style.WARNING(
                    f"{report.archived} records could not be rebuilt: their raw records were "
                    "archived out of explore. Their encrypted values now have tokens; their "
                    "masked values stay masked (protection_version 1)."
                )
            )
        if report.restore:
            self.stdout.write(
                "To rebuild them, restore the archived partitions that hold their raw "
                "records, then run this command again:"
            )
            for source in report.restore:
                self.stdout.write(
                    f"  manage.py restore_partition explore.raw_record {source.restore_range}"
                    f"   # {source.partition}: raw records of {source.records} of them"
                )
            self.stdout.write(
                "Retention keeps a restored partition ATLAS_ARCHIVE_RESTORED_KEEP_DAYS "
                f"({settings.ATLAS_ARCHIVE_RESTORED_KEEP_DAYS}) days before it may archive it "
                "again: run this command again within them."
            )
        if report.unplaced:
            self.stdout.write(
                self.style.WARNING(
                    f"{report.unplaced} of them have their raw record in no archived "
                    "partition (dropped by retention, or outside every batch's range): their "
                    "masked values cannot be rebuilt."
                )
            )
        if report.busy:
            raise CommandError(
                "A promotion held these datasets, which were left as they are; run the "
                f"command again: {', '.join(report.busy)}"
            )

    def _progress(self, progress: RebuildProgress) -> None:
        self.stdout.write(
            f"{progress.dataset}: {progress.done} done, {progress.left} left "
            f"({progress.rate:.0f} records/s)"
        )
