from django.core.management.base import BaseCommand, CommandError

from governance.pipeline.contracts import dump_contracts, export_contract
from governance.pipeline.models import Dataset


class Command(BaseCommand):
    help = (
        "Print datasets and their contracts as a contract file (YAML or JSON), or in the "
        "Open Data Contract Standard v3 (--format odcs, YAML)."
    )

    def add_arguments(self, parser):
        parser.add_argument("datasets", nargs="+", help="Dataset slugs.")
        parser.add_argument("--format", choices=("yaml", "json", "odcs"), default="yaml")

    def handle(self, *args, datasets, format, **options):
        found = {d.slug: d for d in Dataset.objects.filter(slug__in=datasets)}
        missing = [slug for slug in datasets if slug not in found]
        if missing:
            raise CommandError(f"no dataset {', '.join(missing)}")
        chosen = [found[slug] for slug in datasets]
        contracts = [export_contract(dataset) for dataset in chosen]
        extras = [dataset.odcs_extras for dataset in chosen]
        self.stdout.write(dump_contracts(contracts, fmt=format, odcs_extras=extras), ending="")
