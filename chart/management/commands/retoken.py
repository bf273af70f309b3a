from django.core.management.base import BaseCommand, CommandError

from chart.business_keys import refill_keys_with_old_tokens
from chart.protected import retoken_values
from governance.compliance.tokens import TokenKeyring


class Command(BaseCommand):
    help = (
        "Make every keyed token in chart again under the current hash key (the first entry "
        "of ATLAS_HASH_KEY), from the original values, and rebuild business keys that hold "
        "tokens (of chart and of quarantined records). Rotate by putting a new key first, "
        "running this right away (until then, tokens of new records and of old ones differ, "
        "so uniqueness and supersession cannot match them), then `rekey_facts` for the facts' "
        "dimension keys, then removing the old key."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        tokens = TokenKeyring.from_settings()
        counts = retoken_values(batch_size=batch_size)
        keys = refill_keys_with_old_tokens()
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-made {counts['tokens']} tokens in {counts['records']} chart records under "
                f"hash key {tokens.current_id!r}; {keys} quarantined records' business keys. "
                "Run `manage.py rekey_facts` next for the facts' dimension keys."
            )
        )
