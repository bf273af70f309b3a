from django.core.management.base import BaseCommand

from governance.compliance.tokens import TokenKeyring
from navigate.services import rekey_facts


class Command(BaseCommand):
    help = (
        "Make every fact's dimension key (the keyed HMAC facts are upserted on) again under "
        "the current hash key, the first entry of ATLAS_HASH_KEY. Run it with `retoken` "
        "after putting a new hash key first."
    )

    def handle(self, *args, **options):
        changed = rekey_facts()
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-made {changed} facts' dimension keys under hash key "
                f"{TokenKeyring.from_settings().current_id!r}."
            )
        )
