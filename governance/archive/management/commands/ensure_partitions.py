from django.core.management.base import BaseCommand, CommandError

from governance.archive.services.upkeep import ensure_partitions


class Command(BaseCommand):
    help = (
        "Move rows sitting in DEFAULT partitions into partitions of their own periods, then "
        "create partitions ahead of today for raw records (months), facts (years) and the "
        "audit log (quarters)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--months", type=int, help="Months of raw-record partitions ahead (default 3)."
        )
        parser.add_argument("--years", type=int, help="Years of fact partitions ahead (default 2).")
        parser.add_argument(
            "--quarters", type=int, help="Quarters of audit-log partitions ahead (default 2)."
        )

    def handle(self, *args, months, years, quarters, **options):
        for name, value in (("months", months), ("years", years), ("quarters", quarters)):
            if value is not None and not 0 <= value <= 120:
                raise CommandError(f"--{name} must be between 0 and 120, got {value}.")
        reports = ensure_partitions(months=months, years=years, quarters=quarters)
        warnings = 0
        for report in reports:
            created = ", ".join(report.created) if report.created else "none needed"
            self.stdout.write(f"{report.table}: created {created}")
            for partition, rows in report.moved.items():
                self.stdout.write(f"  moved {rows} rows out of DEFAULT into {partition}")
            for partition, rows in report.blocked.items():
                warnings += 1
                self.stdout.write(
                    self.style.WARNING(
                        f"  {partition} not created: {rows} rows for its range sit in the DEFAULT "
                        "partition; move them first."
                    )
                )
            if report.rows_in_default:
                warnings += 1
                self.stdout.write(
                    self.style.WARNING(
                        f"  {report.rows_in_default} rows sit in the DEFAULT partition"
                    )
                )
            else:
                self.stdout.write("  DEFAULT partition is empty")
        if not warnings:
            self.stdout.write(self.style.SUCCESS("All partitioned tables are ready."))
