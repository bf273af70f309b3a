from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from governance.pipeline.contracts import ContractError, import_contracts, read_contract_file


class Command(BaseCommand):
    help = (
        "Create or update datasets and their contracts from a YAML or JSON contract file. "
        "Everything is validated first; with any error nothing is written. Lowering a "
        "field's classification or removing a classified field is a compliance officer's "
        "decision: name them with --user and say why with --reason."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="A .yaml/.yml or .json contract file.")
        parser.add_argument("--user", help="Username recorded in the audit log.")
        parser.add_argument(
            "--reason",
            default="",
            help="Why classifications are lowered or classified fields removed (audited); "
            "needed only then, with a --user who may lower classifications.",
        )

    def handle(self, *args, file, user, reason, **options):
        actor = "manage.py import_contract"
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"no user {user!r}")
        try:
            results = import_contracts(
                documents=read_contract_file(file), actor=actor, source=str(file), reason=reason
            )
        except FileNotFoundError:
            raise CommandError(f"no file at {file}") from None
        except ContractError as exc:
            lines = "\n".join(f"  {error}" for error in exc.errors)
            raise CommandError(f"{file} was not imported; nothing was written:\n{lines}") from None
        for result in results:
            self.stdout.write(self.style.SUCCESS(result.summary()))
