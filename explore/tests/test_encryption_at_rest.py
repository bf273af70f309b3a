"""Landing files are not readable without the key: stored encrypted, loaded whole."""

import base64
import gzip
import hashlib
import io
import re
import zlib
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import override_settings

from explore import services
from explore.models import BatchStatus, LandingBatch, RawRecord
from explore.tests.conftest import gz, store
from governance.compliance.envelope import MAGIC, decrypt_bytes, key_id_of

pytestmark = pytest.mark.django_db

DISTINCT = "zebediah.quonset.7731@example.org"
LINES = 5000  # about 165 KB: three 64 KiB chunks
CSV = b"id,name,email\n" + b"".join(
    b"%d,Name %d,%s\n" % (i, i, DISTINCT.encode() if i % 100 == 7 else b"n%d@example.com" % i)
    for i in range(LINES)
)
NEW_KEY = "new:" + base64.b64encode(b"N" * 32).decode()


def stored_bytes(batch: LandingBatch) -> bytes:
    """The object as it sits on disk, read around Atlas."""
    return Path(default_storage.path(batch.file.name)).read_bytes()


def not_readable(stored: bytes, content: bytes) -> None:
    """Neither the value, nor the file as received (plain or gzip), is in the stored bytes."""
    assert stored.startswith(MAGIC)
    assert DISTINCT.encode() not in stored
    assert DISTINCT.encode("utf-16-le") not in stored
    assert content[:64] not in stored and content[-64:] not in stored
    assert gz(CSV)[10:74] not in stored  # gzip's deflate stream (past its header)
    with pytest.raises((OSError, EOFError, zlib.error)):
        gzip.decompress(stored)


def load(batch: LandingBatch) -> LandingBatch:
    services.load_batch(batch_id=batch.pk)
    batch.refresh_from_db()
    return batch


def rotated(*spec: str) -> str:
    from django.conf import settings

    return ",".join([*spec, settings.ATLAS_ENCRYPTION_KEYS])


@pytest.mark.parametrize(("content", "name"), [(CSV, "people.csv"), (gz(CSV), "people.csv.gz")])
def test_landing_files_are_not_readable_without_the_key(customers, content, name):
    batch = store(customers, content, name)

    stored = stored_bytes(batch)
    not_readable(stored, content)
    assert batch.encryption_key_id == key_id_of(stored) == "test"
    # The batch describes the file as received: duplicates are recognised by it.
    assert batch.sha256 == hashlib.sha256(content).hexdigest()
    assert batch.size_bytes == len(content)
    assert decrypt_bytes(stored) == content

    load(batch)
    assert batch.status == BatchStatus.LOADED, batch.error
    assert (batch.rows_total, batch.rows_parsed, batch.rows_failed) == (LINES, LINES, 0)
    rows = RawRecord.objects.filter(batch=batch, received_at=batch.received_at)
    assert rows.count() == LINES
    assert rows.filter(payload__email=DISTINCT).count() == LINES // 100


def test_the_same_file_is_still_refused_the_second_time(customers):
    first = store(customers, CSV, "people.csv")
    with pytest.raises(services.DuplicateFileError, match=f"batch {first.pk}"):
        store(customers, CSV, "again.csv")  # its ciphertext would differ; its digest does not
    assert LandingBatch.objects.count() == 1


def test_posted_records_are_stored_encrypted(customers):
    body = b'[{"id": 1, "email": "%s"}, {"id": 2}]' % DISTINCT.encode()
    batch = services.store_records(dataset=customers, body=body, actor="tests")
    assert DISTINCT.encode() not in stored_bytes(batch)
    assert load(batch).rows_parsed == 2


@pytest.mark.s3
def test_through_s3_the_object_is_not_readable_without_the_key(s3_storage, customers):
    content = gz(CSV)
    batch = store(customers, content, "people.csv.gz")

    s3 = s3_storage["client"]
    got = s3.get_object(Bucket=s3_storage["bucket"], Key=batch.file.name)
    stored = got["Body"].read()
    not_readable(stored, content)
    assert got["ContentType"] == "application/octet-stream"
    assert batch.sha256 == hashlib.sha256(content).hexdigest()

    load(batch)
    assert batch.status == BatchStatus.LOADED, batch.error
    assert batch.rows_total == batch.rows_parsed == LINES
    assert RawRecord.objects.filter(batch=batch, payload__email=DISTINCT).count() == LINES // 100


def test_a_file_stored_before_encryption_still_loads(customers):
    """A batch without a key id is one stored plain, before this change: read as it is."""
    batch = store(customers, gz(CSV), "people.csv.gz")
    default_storage.delete(batch.file.name)
    default_storage.save(batch.file.name, ContentFile(gz(CSV)))
    LandingBatch.objects.filter(pk=batch.pk).update(encryption_key_id=None)

    load(batch)
    assert batch.status == BatchStatus.LOADED, batch.error
    assert batch.rows_total == LINES


def test_a_plain_object_in_place_of_an_encrypted_file_is_refused(customers):
    batch = store(customers, CSV, "people.csv")
    default_storage.delete(batch.file.name)
    default_storage.save(batch.file.name, ContentFile(CSV))

    load(batch)
    assert batch.status == BatchStatus.FAILED
    assert batch.error == (
        "the stored file cannot be decrypted: the object is not encrypted although it was "
        "stored encrypted: it was replaced or damaged"
    )
    assert not RawRecord.objects.filter(batch=batch).exists()


def test_a_tampered_file_fails_its_load_and_says_so_without_its_content(customers):
    batch = store(customers, CSV, "people.csv")
    path = Path(default_storage.path(batch.file.name))
    stored = bytearray(path.read_bytes())
    stored[len(stored) // 2] ^= 0x01
    path.write_bytes(bytes(stored))

    load(batch)
    assert batch.status == BatchStatus.FAILED
    assert re.fullmatch(
        r"the stored file cannot be decrypted: chunk \d+ of the object does not decrypt: "
        r"the object was tampered with \(or its chunks moved\)",
        batch.error,
    ), batch.error
    assert DISTINCT not in batch.error and "Name" not in batch.error
    assert not RawRecord.objects.filter(batch=batch).exists()


def test_a_file_under_an_older_key_loads_after_rotation(customers):
    old_batch = store(customers, CSV, "people.csv")
    assert old_batch.encryption_key_id == "test"

    with override_settings(ATLAS_ENCRYPTION_KEYS=rotated(NEW_KEY)):
        load(old_batch)
        assert old_batch.status == BatchStatus.LOADED, old_batch.error
        assert old_batch.rows_total == LINES
        new_batch = store(customers, gz(CSV), "people.csv.gz")
        assert new_batch.encryption_key_id == key_id_of(stored_bytes(new_batch)) == "new"
        assert load(new_batch).status == BatchStatus.LOADED

    # Once the old key is gone, what was written under it no longer opens; the batch
    # fails with the reason, and loads again once the key is back.
    orphan = store(customers, CSV + b"5000,Extra,x@example.com\n", "more.csv")
    with override_settings(ATLAS_ENCRYPTION_KEYS=NEW_KEY):
        load(orphan)
    assert orphan.status == BatchStatus.FAILED
    assert orphan.error == (
        "the stored file cannot be decrypted: the object was encrypted with key 'test', "
        "which is not in ATLAS_ENCRYPTION_KEYS (keep a retired key listed until every "
        "object written under it is re-wrapped: manage.py reencrypt_objects)"
    )
    services.retry_batch(batch=orphan, actor="tests")
    assert load(orphan).status == BatchStatus.LOADED


def test_the_loader_reads_the_file_as_received_in_bounded_pieces(customers):
    received = gz(CSV)  # once: a gzip header holds the time it was made
    batch = store(customers, received, "people.csv.gz")
    with services.open_batch_file(batch) as opened:
        pieces = list(iter(lambda: opened.read(1 << 20), b""))
    assert b"".join(pieces) == received
    assert max(len(piece) for piece in pieces) <= 64 * 1024
    assert io.BytesIO(gzip.decompress(b"".join(pieces))).read() == CSV


# --- Key rotation: re-wrapping stored objects ---------------------------------------------


def body_after_header(stored: bytes) -> bytes:
    from governance.compliance import envelope

    source = io.BytesIO(stored)
    envelope.read_header(source)
    return source.read()


def test_reencrypt_objects_rewraps_landing_files_and_archives_under_the_current_key(
    customers, dataset
):
    from django.core.management import call_command

    from atlas_site.partitions import RAW_RECORDS
    from governance.archive.models import ArchivedPartition, RetentionPolicy
    from governance.archive.services.restore import restore_archived
    from governance.archive.services.retention import apply_retention
    from governance.archive.tests.conftest import (
        OLD_MONTH,
        at,
        land_raw,
        make_partition,
        raw_rows_of,
    )
    from governance.compliance.models import AuditLog
    from governance.pipeline.models import RunKind, RunStatus
    from governance.pipeline.services import create_run

    batch = store(customers, gz(CSV), "people.csv.gz")
    old_name, old_stored = batch.file.name, stored_bytes(batch)
    legacy = store(customers, CSV, "legacy.csv")
    default_storage.delete(legacy.file.name)
    default_storage.save(legacy.file.name, ContentFile(CSV))
    LandingBatch.objects.filter(pk=legacy.pk).update(encryption_key_id=None)
    make_partition(RAW_RECORDS, OLD_MONTH)
    land_raw(dataset, 200, at=at(OLD_MONTH), label=DISTINCT)
    original = raw_rows_of(OLD_MONTH)
    RetentionPolicy.objects.create(layer="explore", keep_months=12)
    run = apply_retention(run=create_run(dataset=None, kind=RunKind.ARCHIVE, triggered_by="test"))
    assert run.status == RunStatus.SUCCEEDED, run.error
    manifest = ArchivedPartition.objects.get()
    old_key = manifest.object_key
    old_archive = default_storage.open(old_key).read()
    assert manifest.encryption_key_id == "test"

    with override_settings(ATLAS_ENCRYPTION_KEYS=rotated(NEW_KEY)):
        out = io.StringIO()
        call_command("reencrypt_objects", "--dry-run", stdout=out)
        assert "Would re-wrap under key 'new': 1 landing files, 1 archive objects" in (
            out.getvalue()
        )
        assert "left plain): 1 landing files, 0 archive objects" in out.getvalue()
        assert LandingBatch.objects.get(pk=batch.pk).encryption_key_id == "test"

        out = io.StringIO()
        call_command("reencrypt_objects", stdout=out)
        assert "Re-wrapped under key 'new': 1 landing files, 1 archive objects" in out.getvalue()

    # The landing file: a new header under the new key, the same body, the old object gone.
    batch.refresh_from_db()
    assert batch.encryption_key_id == "new"
    assert batch.file.name != old_name and not default_storage.exists(old_name)
    assert batch.file.name.startswith(old_name.rsplit("/", 1)[0] + "/people_")
    new_stored = stored_bytes(batch)
    assert key_id_of(new_stored) == "new"
    assert body_after_header(new_stored) == body_after_header(old_stored)
    legacy.refresh_from_db()
    assert legacy.encryption_key_id is None and stored_bytes(legacy) == CSV
    assert AuditLog.objects.filter(
        object_type="explore.landingbatch", object_id=str(batch.pk), action="update"
    ).exists()

    # The archive: the manifest describes the new object.
    manifest.refresh_from_db()
    assert manifest.encryption_key_id == "new"
    assert manifest.object_key != old_key and not default_storage.exists(old_key)
    new_archive = default_storage.open(manifest.object_key).read()
    assert (len(new_archive), hashlib.sha256(new_archive).hexdigest()) == (
        manifest.byte_size,
        manifest.sha256,
    )
    assert body_after_header(new_archive) == body_after_header(old_archive)

    # The old key can go now: everything still opens with the new one alone.
    with override_settings(ATLAS_ENCRYPTION_KEYS=NEW_KEY):
        assert load(batch).status == BatchStatus.LOADED, batch.error
        assert batch.rows_total == LINES
        assert load(legacy).status == BatchStatus.LOADED, legacy.error
        restore_archived(manifest=manifest, actor="tests")
        assert raw_rows_of(OLD_MONTH) == original
        out = io.StringIO()
        call_command("reencrypt_objects", stdout=out)
        assert "Re-wrapped under key 'new': 0 landing files, 0 archive objects" in out.getvalue()


def test_reencrypt_objects_names_what_it_could_not_rewrap_and_does_the_rest(customers):
    from django.core.management import CommandError, call_command

    lost = store(customers, CSV, "lost.csv")
    default_storage.delete(lost.file.name)
    fine = store(customers, gz(CSV), "fine.csv.gz")
    damaged = store(customers, CSV + b"9999,Other,o@example.com\n", "damaged.csv")
    path = Path(default_storage.path(damaged.file.name))
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x01  # inside the final chunk
    path.write_bytes(bytes(data))

    with (
        override_settings(ATLAS_ENCRYPTION_KEYS=rotated(NEW_KEY)),
        pytest.raises(CommandError) as caught,
    ):
        call_command("reencrypt_objects", stdout=io.StringIO())

    message = str(caught.value)
    assert message.startswith("2 objects were not re-wrapped (each left as it was): ")
    assert f"batch {lost.pk}: " in message
    assert f"batch {damaged.pk}: " in message and "does not decrypt" in message
    assert DISTINCT not in message
    for batch in (lost, damaged):
        before = batch.file.name
        batch.refresh_from_db()
        assert (batch.encryption_key_id, batch.file.name) == ("test", before)
    # The damaged one's re-wrapped copy was removed; only its original is there.
    assert sorted(p.name for p in path.parent.iterdir()) == ["damaged.csv"]
    fine.refresh_from_db()
    assert fine.encryption_key_id == "new"
