"""Archive objects are not readable without the key: stored encrypted, restored whole."""

import base64
import gzip
import hashlib
import re
import zlib
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.test import override_settings

from atlas_site.partitions import RAW_RECORDS
from governance.archive.models import ArchivedPartition, RetentionPolicy
from governance.archive.services.ddl import ArchiveError
from governance.archive.services.objects import verify_object
from governance.archive.services.restore import restore_archived
from governance.archive.services.retention import apply_retention
from governance.archive.services.rewrap import rewrap_archived
from governance.archive.tests.conftest import OLD_MONTH, at, land_raw, make_partition, raw_rows_of
from governance.compliance.envelope import MAGIC, decrypt_bytes, key_id_of
from governance.pipeline.models import RunKind, RunStatus
from governance.pipeline.services import create_run

pytestmark = pytest.mark.django_db

DISTINCT = "Zebediah-Quonset-7731"
ROWS = 3000
NEW_KEY = "new:" + base64.b64encode(b"N" * 32).decode()


def _test_keys() -> str:
    return django_settings.ATLAS_ENCRYPTION_KEYS


def run_retention():
    run = create_run(dataset=None, kind=RunKind.ARCHIVE, triggered_by="test")
    return apply_retention(run=run)


def archive_one_month(dataset) -> tuple[ArchivedPartition, list[tuple]]:
    make_partition(RAW_RECORDS, OLD_MONTH)
    land_raw(dataset, ROWS, at=at(OLD_MONTH), label=DISTINCT)
    original = raw_rows_of(OLD_MONTH)
    assert len(original) == ROWS
    RetentionPolicy.objects.get_or_create(layer="explore", dataset=None, keep_months=12)
    run = run_retention()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert raw_rows_of(OLD_MONTH) == []
    return ArchivedPartition.objects.get(), original


def not_readable(stored: bytes) -> None:
    assert stored.startswith(MAGIC)
    assert DISTINCT.encode() not in stored
    with pytest.raises((OSError, EOFError, zlib.error)):
        gzip.decompress(stored)
    # Nor does any deflate stream start anywhere in it that would show the value.
    for offset in range(0, len(stored), 997):
        try:
            found = zlib.decompressobj(wbits=-15).decompress(stored[offset:], 1 << 20)
        except zlib.error:
            continue
        assert DISTINCT.encode() not in found


def test_archive_objects_are_not_readable_without_the_key(dataset):
    manifest, original = archive_one_month(dataset)

    stored = Path(default_storage.path(manifest.object_key)).read_bytes()
    not_readable(stored)
    assert manifest.encryption_key_id == key_id_of(stored) == "test"
    # The manifest describes the object as stored, checkable without the key.
    assert (len(stored), hashlib.sha256(stored).hexdigest()) == (
        manifest.byte_size,
        manifest.sha256,
    )
    plain = gzip.decompress(decrypt_bytes(stored))
    assert plain.startswith(b"id,received_at,line_number,payload,")
    assert DISTINCT.encode() in plain

    restore_archived(manifest=manifest, actor="tests")
    assert raw_rows_of(OLD_MONTH) == original


@pytest.mark.s3
def test_through_s3_the_archive_is_not_readable_without_the_key(s3_storage, dataset):
    manifest, original = archive_one_month(dataset)

    got = s3_storage["client"].get_object(Bucket=s3_storage["bucket"], Key=manifest.object_key)
    stored = got["Body"].read()
    not_readable(stored)
    assert hashlib.sha256(stored).hexdigest() == manifest.sha256
    assert manifest.encryption_key_id == "test"

    restore_archived(manifest=manifest, actor="tests")
    assert raw_rows_of(OLD_MONTH) == original


def test_an_archive_under_an_older_key_restores_after_rotation(dataset):
    manifest, original = archive_one_month(dataset)
    with override_settings(ATLAS_ENCRYPTION_KEYS=f"{NEW_KEY},{_test_keys()}"):
        restore_archived(manifest=manifest, actor="tests")
    assert raw_rows_of(OLD_MONTH) == original


def test_without_its_key_a_restore_is_refused_and_leaves_nothing(dataset):
    manifest, _original = archive_one_month(dataset)
    with (
        override_settings(ATLAS_ENCRYPTION_KEYS=NEW_KEY),
        pytest.raises(ArchiveError, match="encrypted with key 'test', which is not in"),
    ):
        restore_archived(manifest=manifest, actor="tests")
    assert raw_rows_of(OLD_MONTH) == []
    manifest.refresh_from_db()
    assert manifest.restored_at is None


def test_new_archives_use_the_current_key(dataset):
    with override_settings(ATLAS_ENCRYPTION_KEYS=f"{NEW_KEY},{_test_keys()}"):
        manifest, original = archive_one_month(dataset)
        assert manifest.encryption_key_id == "new"
        assert key_id_of(default_storage.open(manifest.object_key).read()) == "new"
        restore_archived(manifest=manifest, actor="tests")
    assert raw_rows_of(OLD_MONTH) == original


def test_an_archive_stored_before_encryption_still_restores(dataset):
    """A manifest without a key id names a plain gzip object: restored as it is."""
    manifest, original = archive_one_month(dataset)
    plain = decrypt_bytes(default_storage.open(manifest.object_key).read())
    default_storage.delete(manifest.object_key)
    default_storage.save(manifest.object_key, ContentFile(plain))
    ArchivedPartition.objects.filter(pk=manifest.pk).update(
        encryption_key_id=None, byte_size=len(plain), sha256=hashlib.sha256(plain).hexdigest()
    )
    manifest.refresh_from_db()

    restore_archived(manifest=manifest, actor="tests")
    assert raw_rows_of(OLD_MONTH) == original


class BodyCorruptingStorage(FileSystemStorage):
    """Stores the file, then flips one byte in the middle of it (inside a chunk)."""

    def _save(self, name, content):
        name = super()._save(name, content)
        path = Path(self.path(name))
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        return name


class CuttingStorage(FileSystemStorage):
    """Stores all but the last 30 bytes: the final chunk is cut short."""

    def _save(self, name, content):
        name = super()._save(name, content)
        path = Path(self.path(name))
        path.write_bytes(path.read_bytes()[:-30])
        return name


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        (BodyCorruptingStorage, r"cannot be read back: chunk \d+ of the object does not decrypt"),
        (CuttingStorage, r"cannot be read back: chunk \d+ .* truncated or tampered with"),
    ],
)
def test_a_damaged_encrypted_object_fails_verification_and_drops_nothing(
    settings, dataset, backend, reason
):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": f"{__name__}.{backend.__name__}"},
    }
    make_partition(RAW_RECORDS, OLD_MONTH)
    land_raw(dataset, ROWS, at=at(OLD_MONTH), label=DISTINCT)
    original = raw_rows_of(OLD_MONTH)
    RetentionPolicy.objects.create(layer="explore", keep_months=12)

    run = run_retention()

    assert run.status == RunStatus.FAILED
    assert re.search(reason, run.error), run.error
    assert DISTINCT not in run.error
    assert raw_rows_of(OLD_MONTH) == original
    assert not ArchivedPartition.objects.exists()


def test_verification_names_a_key_other_than_the_one_expected(dataset):
    manifest, _original = archive_one_month(dataset)
    with pytest.raises(ArchiveError, match="encrypted under key 'test' instead of 'new'"):
        verify_object(
            key=manifest.object_key,
            sha256=manifest.sha256,
            rows=manifest.row_count,
            byte_size=manifest.byte_size,
            key_id="new",
        )


# --- Key rotation: re-wrapping archived objects ----------------------------------------------


def archive_keys() -> list[str]:
    _dirs, files = default_storage.listdir("archive/explore/raw_record")
    return sorted(files)


@pytest.mark.s3
def test_an_archive_is_rewrapped_under_the_current_key_through_s3(s3_storage, dataset):
    manifest, original = archive_one_month(dataset)
    old_key = manifest.object_key
    with override_settings(ATLAS_ENCRYPTION_KEYS=f"{NEW_KEY},{_test_keys()}"):
        assert rewrap_archived(manifest=manifest, actor="tests") is True
        assert rewrap_archived(manifest=manifest, actor="tests") is False
    assert manifest.encryption_key_id == "new" and manifest.object_key != old_key
    client, bucket = s3_storage["client"], s3_storage["bucket"]
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [manifest.object_key]
    stored = client.get_object(Bucket=bucket, Key=manifest.object_key)["Body"].read()
    assert key_id_of(stored) == "new"
    assert hashlib.sha256(stored).hexdigest() == manifest.sha256
    with override_settings(ATLAS_ENCRYPTION_KEYS=NEW_KEY):
        restore_archived(manifest=manifest, actor="tests")
    assert raw_rows_of(OLD_MONTH) == original


def test_a_damaged_archive_is_not_rewrapped_and_its_manifest_is_unchanged(dataset):
    manifest, _original = archive_one_month(dataset)
    path = Path(default_storage.path(manifest.object_key))
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x01
    path.write_bytes(bytes(data))
    before = ArchivedPartition.objects.values().get(pk=manifest.pk)

    with (
        override_settings(ATLAS_ENCRYPTION_KEYS=f"{NEW_KEY},{_test_keys()}"),
        pytest.raises(ArchiveError, match=r"cannot be read back: chunk \d+ .* truncated"),
    ):
        rewrap_archived(manifest=manifest, actor="tests")

    assert ArchivedPartition.objects.values().get(pk=manifest.pk) == before
    assert archive_keys() == [manifest.object_key.rsplit("/", 1)[1]]


def test_an_archive_whose_key_is_gone_is_not_rewrapped(dataset):
    manifest, _original = archive_one_month(dataset)
    with (
        override_settings(ATLAS_ENCRYPTION_KEYS=NEW_KEY),
        pytest.raises(ArchiveError, match="encrypted with key 'test', which is not in"),
    ):
        rewrap_archived(manifest=manifest, actor="tests")
    manifest.refresh_from_db()
    assert manifest.encryption_key_id == "test"
    assert archive_keys() == [manifest.object_key.rsplit("/", 1)[1]]
