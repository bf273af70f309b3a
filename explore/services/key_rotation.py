"""Key rotation of stored files: a landing file's data key wrapped by the current key."""

import contextlib
import hashlib
import logging
from typing import IO, cast

from django.db import transaction

from atlas_site import advisory_locks
from explore.models import LandingBatch
from explore.services.loading import open_stored_object, stored_name
from explore.services.receiving import READ_BYTES, EncryptedFile
from governance.compliance import envelope
from governance.compliance.keys import Keyring
from governance.compliance.models import AuditAction
from governance.compliance.services import record_audit

logger = logging.getLogger(__name__)

# --- Key rotation of stored files ---------------------------------------------------------


class RewrapError(Exception):
    """A stored file whose data key was not re-wrapped; the message says why."""


def rewrap_batch_file(*, batch: LandingBatch, actor, keyring: Keyring | None = None) -> bool:
    """Wrap the data key of a batch's stored file by the current key; the body is copied
    as it is, never decrypted into storage. Returns False when there was nothing to do
    (already under the current key, or stored before encryption: plain).

    The re-wrapped object is written beside the old one, read back and decrypted whole
    (its sha256 must be the batch's), then the batch is switched to it and the old
    object deleted. Under the batch's load lock: a batch being loaded is left for later.
    Raises RewrapError (the batch unchanged, the new object removed).
    """
    keyring = keyring or Keyring.from_settings()
    if not batch.encryption_key_id or batch.encryption_key_id == keyring.current_id:
        return False
    with advisory_locks.try_session_lock(advisory_locks.LOAD_BATCH, batch.pk) as locked:
        if not locked:
            raise RewrapError(f"batch {batch.pk} is being loaded; run this again later")
        batch = LandingBatch.objects.get(pk=batch.pk)
        old_name, old_key_id = stored_name(batch), batch.encryption_key_id
        storage = batch.file.storage
        try:
            with contextlib.closing(open_stored_object(batch)) as stored:
                rewrapped = envelope.RewrappingReader(stored, keyring)
                if rewrapped.old_key_id != old_key_id:
                    raise RewrapError(
                        f"batch {batch.pk} records key {old_key_id!r}, its file names "
                        f"{rewrapped.old_key_id!r}"
                    )
                new_name = storage.save(
                    envelope.rewrapped_name(old_name), EncryptedFile(cast(IO[bytes], rewrapped))
                )
        except (envelope.EnvelopeError, OSError) as error:
            raise RewrapError(f"batch {batch.pk}: {error}") from error
        try:
            digest = hashlib.sha256()
            with envelope.decrypting_reader(
                open_stored_object(batch, new_name), keyring, require_encrypted=True
            ) as opened:
                while block := opened.read(READ_BYTES):
                    digest.update(block)
            if digest.hexdigest() != batch.sha256:
                raise RewrapError(
                    f"batch {batch.pk}: the re-wrapped file decrypts to sha256 "
                    f"{digest.hexdigest()} instead of {batch.sha256}"
                )
            with transaction.atomic():
                changed = LandingBatch.objects.filter(
                    pk=batch.pk, file=old_name, encryption_key_id=old_key_id
                ).update(file=new_name, encryption_key_id=rewrapped.key_id)
                if changed != 1:
                    raise RewrapError(f"batch {batch.pk} changed meanwhile; run this again")
                record_audit(
                    actor=actor,
                    action=AuditAction.UPDATE,
                    instance=batch,
                    before={"encryption_key_id": old_key_id, "file": old_name},
                    after={"encryption_key_id": rewrapped.key_id, "file": new_name},
                    detail=f"re-wrapped the stored file's data key from key {old_key_id!r} "
                    f"to {rewrapped.key_id!r} (body unchanged, decrypted and checked)",
                )
        except BaseException as error:
            storage.delete(new_name)
            if isinstance(error, (envelope.EnvelopeError, OSError)):
                raise RewrapError(f"batch {batch.pk}: {error}") from error
            raise
    try:
        storage.delete(old_name)
    except Exception:  # the batch names the new object; an old copy left behind is harmless
        logger.warning("could not delete %s after re-wrapping it", old_name, exc_info=True)
    return True
