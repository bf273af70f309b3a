from django.core.management.base import BaseCommand

from dashboards.services import refresh_run_summaries


class Command(BaseCommand):
    help = "Summarise every ended run not yet in the dashboards' summaries."

    def handle(self, *args, **options):
        total = 0
        while done := refresh_run_summaries():
            total += done
        self.stdout.write(f"summarised {total} runs")
