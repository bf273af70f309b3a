"""Re-wrap the data keys of stored objects (landing files, archives) under the current key.

It lives in explore because it covers both explore's landing files and the archive's
objects (governance.archive): explore may import governance, not the other way round.
"""

from django.core.management.base import BaseCommand, CommandError

from explore import services
from explore.models import LandingBatch
from governance.archive.models import ArchivedPartition
from governance.archive.services.ddl import ArchiveError
from governance.archive.services.rewrap import rewrap_archived
from governance.compliance.keys import Keyring

ACTOR = "reencrypt_objects"


class Command(BaseCommand):
    help = (
        "Re-wrap the data key of every stored landing file and archive object encrypted "
        "under an older key, under the current key (the first entry of "
        "ATLAS_ENCRYPTION_KEYS). Bodies are copied as they are, not re-encrypted; each new "
        "object is read back and decrypted whole before its batch or manifest is switched "
        "to it and the old object deleted. Rotate by putting a new key first, keeping the "
        "old ones after it, running this (and `manage.py reencrypt` for chart's values), "
        "then removing the old keys. Objects stored before encryption are left plain."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be re-wrapped; change nothing."
        )

    def handle(self, *args, dry_run, **options):
        keyring = Keyring.from_settings()
        current = keyring.current_id
        batches = (
            LandingBatch.objects.filter(encryption_key_id__isnull=False)
            .exclude(encryption_key_id=current)
            .order_by("pk")
        )
        manifests = (
            ArchivedPartition.objects.filter(encryption_key_id__isnull=False)
            .exclude(encryption_key_id=current)
            .order_by("pk")
        )
        plain = (
            LandingBatch.objects.filter(encryption_key_id__isnull=True).exclude(file="").count(),
            ArchivedPartition.objects.filter(encryption_key_id__isnull=True).count(),
        )
        if dry_run:
            self.stdout.write(
                f"Would re-wrap under key {current!r}: {batches.count()} landing files, "
                f"{manifests.count()} archive objects. Stored before encryption (left "
                f"plain): {plain[0]} landing files, {plain[1]} archive objects."
            )
            return
        done = {"landing files": 0, "archive objects": 0}
        failures: list[str] = []
        for batch in batches.iterator():
            try:
                if services.rewrap_batch_file(batch=batch, actor=ACTOR, keyring=keyring):
                    done["landing files"] += 1
            except services.RewrapError as error:
                failures.append(str(error))
        for manifest in manifests.iterator():
            try:
                if rewrap_archived(manifest=manifest, actor=ACTOR, keyring=keyring):
                    done["archive objects"] += 1
            except ArchiveError as error:
                failures.append(f"manifest {manifest.pk} ({manifest.partition_name}): {error}")
        self.stdout.write(
            f"Re-wrapped under key {current!r}: {done['landing files']} landing files, "
            f"{done['archive objects']} archive objects. Stored before encryption (left "
            f"plain): {plain[0]} landing files, {plain[1]} archive objects."
        )
        if failures:
            raise CommandError(
                f"{len(failures)} objects were not re-wrapped (each left as it was): "
                + " | ".join(failures)
            )
        self.stdout.write(self.style.SUCCESS("Every encrypted object is under the current key."))
