from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from explore import services
from explore.models import BatchStatus, LandingBatch
from governance.pipeline.contracts import ContractError, import_contracts, read_contract_file
from navigate.definitions import Aggregation, Grain
from navigate.models import MetricDefinition
from orchestration.management.commands.ingest import describe_outcome, wait_for

EXAMPLES = Path(settings.BASE_DIR) / "examples"
DEMOS = [("customers.contract.yaml", "customers.csv")]
# Metrics over the demo datasets, so that a newcomer sees facts in navigate (and on the
# dashboards) after the first promotion. Made once: a steward's edit of one stands.
DEMO_METRICS = {
    "customers": [
        {
            "slug": "customers-signups-by-country",
            "name": "Sign-ups by country",
            "description": "Customers by the month they signed up in, per billing country.",
            "aggregation": Aggregation.COUNT,
            "time_field": "signed_up_on",
            "grain": Grain.MONTH,
            "dimension_fields": ["country"],
        },
        {
            "slug": "customers-lifetime-value-by-segment",
            "name": "Lifetime value by segment",
            "description": "Total lifetime value (euros) of the customers who signed up each "
            "year, per segment.",
            "aggregation": Aggregation.SUM,
            "value_field": "lifetime_value",
            "time_field": "signed_up_on",
            "grain": Grain.YEAR,
            "dimension_fields": ["segment"],
        },
    ]
}


class Command(BaseCommand):
    help = (
        "Load the examples end to end: import each example contract, ingest its data file "
        "and wait for the load, so that a new installation shows real data. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--inline",
            action="store_true",
            help="Load in this process instead of waiting for a Celery worker.",
        )
        parser.add_argument(
            "--worker-timeout",
            type=float,
            default=30,
            help="Seconds to wait for a worker to start the load before loading here.",
        )

    def handle(self, *args, inline, worker_timeout, **options):
        actor = "manage.py seed_demo"
        for contract_name, data_name in DEMOS:
            try:
                results = import_contracts(
                    documents=read_contract_file(EXAMPLES / contract_name),
                    actor=actor,
                    source=f"examples/{contract_name}",
                )
            except ContractError as exc:
                raise CommandError(f"examples/{contract_name}:\n{exc}") from None
            dataset = results[0].dataset
            self.stdout.write(results[0].summary())
            self._define_metrics(dataset)
            path = EXAMPLES / data_name
            with path.open("rb") as handle:
                try:
                    batch = services.store_upload(
                        dataset=dataset, file=handle, filename=path.name, actor=actor, via="cli"
                    )
                except services.DuplicateFileError as exc:
                    batch = exc.batch
                    self.stdout.write(f"{data_name}: already received as batch {batch.pk}")
                else:
                    self.stdout.write(f"{data_name}: stored as batch {batch.pk}")
            batch = self._loaded(batch, inline=inline, worker_timeout=worker_timeout)
            self.stdout.write(self.style.SUCCESS(describe_outcome(batch)))

    def _define_metrics(self, dataset) -> None:
        for spec in DEMO_METRICS.get(dataset.slug, []):
            if MetricDefinition.objects.filter(slug=spec["slug"]).exists():
                continue
            metric = MetricDefinition(dataset=dataset, **spec)
            metric.full_clean()
            metric.save()
            self.stdout.write(f"metric {metric.slug}: defined")

    def _loaded(self, batch: LandingBatch, *, inline: bool, worker_timeout: float):
        batch.refresh_from_db()
        if batch.status == BatchStatus.FAILED:
            services.retry_batch(batch=batch, actor="manage.py seed_demo")
        if not inline and batch.status != BatchStatus.LOADED:
            try:
                return wait_for(batch, timeout=worker_timeout)
            except CommandError:
                self.stdout.write("no worker loaded it in time; loading here")
        # Safe even if a worker starts on it now: a batch loads once (services.load_batch).
        services.load_batch(batch_id=batch.pk, triggered_by="manage.py seed_demo")
        return wait_for(batch, timeout=60)
