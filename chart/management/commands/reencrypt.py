from django.core.management.base import BaseCommand, CommandError

from chart.protected import reencrypt_values
from governance.compliance.keys import Keyring


class Command(BaseCommand):
    help = (
        "Re-encrypt chart's encrypted values, the sealed originals of tagged values and "
        "stewards' corrections of encrypted fields under the current key (the first entry "
        "of ATLAS_ENCRYPTION_KEYS). Rotate by putting a new key first, keeping the old ones "
        "after it, running this, then removing the old keys."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        keyring = Keyring.from_settings()
        counts = reencrypt_values(batch_size=batch_size)
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted {counts['values']} values in {counts['records']} chart records "
                f"under key {keyring.current_id!r}."
            )
        )
