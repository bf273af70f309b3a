"""Key rotation of archived objects: an object's data key wrapped by the current key, its
body copied as it is."""

import logging
from contextlib import closing
from typing import IO, cast

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from governance.archive.models import ArchivedPartition
from governance.archive.services.ddl import ArchiveError
from governance.archive.services.objects import HashingReader, open_object, verify_object
from governance.compliance import envelope
from governance.compliance.keys import Keyring
from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit

logger = logging.getLogger(__name__)


def rewrap_archived(*, manifest: ArchivedPartition, actor, keyring: Keyring | None = None) -> bool:
    """Wrap the data key of an archived object by the current key; the body is copied as
    it is, never decrypted into storage. Returns False when there is nothing to do
    (already under the current key, or archived before encryption: plain gzip).

    The re-wrapped object is written beside the old one and verified like a fresh archive
    (sha256 and size of its bytes, then decrypted whole: row count and key id); then the
    manifest is switched to it (object key, sha256, size, key id) under its row lock,
    which a restore also takes, and the old object deleted. Raises ArchiveError with the
    manifest unchanged and the new object removed.
    """
    keyring = keyring or Keyring.from_settings()
    if not manifest.encryption_key_id or manifest.encryption_key_id == keyring.current_id:
        return False
    old_key, old_key_id = manifest.object_key, manifest.encryption_key_id
    if not default_storage.exists(old_key):
        raise ArchiveError(f"the object {old_key} is missing from object storage")
    new_key = None
    try:
        with closing(open_object(old_key)) as stored:
            rewrapped = envelope.RewrappingReader(stored, keyring)
            if rewrapped.old_key_id != old_key_id:
                raise ArchiveError(
                    f"the manifest of {old_key} records key {old_key_id!r}, the object names "
                    f"{rewrapped.old_key_id!r}"
                )
            written = HashingReader(rewrapped)
            wanted = envelope.rewrapped_name(old_key)
            # File wants an IO; a raw stream reading as it goes is what storage reads.
            new_key = default_storage.save(wanted, File(cast("IO[bytes]", written), name=wanted))
        verify_object(
            key=new_key,
            sha256=written.digest.hexdigest(),
            rows=manifest.row_count,
            byte_size=written.size,
            key_id=rewrapped.key_id,
        )
        with transaction.atomic():
            current = ArchivedPartition.objects.select_for_update().get(pk=manifest.pk)
            if (current.object_key, current.encryption_key_id) != (old_key, old_key_id):
                raise ArchiveError(f"the manifest of {old_key} changed meanwhile; run this again")
            before: dict[str, str | int] = {"object_key": old_key, "encryption_key_id": old_key_id}
            before.update(sha256=current.sha256, byte_size=current.byte_size)
            current.object_key = new_key
            current.encryption_key_id = rewrapped.key_id
            current.sha256 = written.digest.hexdigest()
            current.byte_size = written.size
            current.save(update_fields=["object_key", "encryption_key_id", "sha256", "byte_size"])
            record_audit(
                actor=actor,
                action=AuditAction.UPDATE,
                instance=current,
                before=before,
                after={
                    "object_key": new_key,
                    "encryption_key_id": rewrapped.key_id,
                    "sha256": current.sha256,
                    "byte_size": current.byte_size,
                },
                detail=f"re-wrapped the data key of {old_key} from key {old_key_id!r} to "
                f"{rewrapped.key_id!r} as {new_key} (body unchanged, verified)",
            )
    except BaseException as error:
        if new_key is not None:
            default_storage.delete(new_key)
        if isinstance(error, (envelope.EnvelopeError, OSError)):
            raise ArchiveError(f"the object {old_key} was not re-wrapped: {error}") from error
        raise
    try:
        default_storage.delete(old_key)
    except Exception:  # the manifest names the new object; an old copy left behind is harmless
        logger.warning("could not delete %s after re-wrapping it", old_key, exc_info=True)
    manifest.refresh_from_db()
    return True
