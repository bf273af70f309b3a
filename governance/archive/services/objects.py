"""Archive objects in storage: their names, the export of a partition through gzip and
envelope encryption, reading one back and checking it is exactly what was written."""

import csv
import gzip
import hashlib
import io
import tempfile
import zlib
from dataclasses import dataclass

from django.core.files import File
from django.core.files.storage import default_storage
from storages.utils import clean_name

from atlas_site.partitions import Partition, table_columns
from governance.archive.models import ArchivedPartition
from governance.archive.services.ddl import ArchiveError
from governance.compliance import envelope
from governance.compliance.keys import Keyring

ARCHIVE_PREFIX = "archive"
READ_CHUNK = 1024 * 1024
# gzip's own default (6): level 9 took twice as long for the same size (bench/archive.py).
COMPRESS_LEVEL = 6
# A raw line may be up to ATLAS_MAX_RECORD_BYTES; csv's default field limit is 128 KiB.
csv.field_size_limit(2**31 - 1)


def object_key(partition: Partition, run_id: int) -> str:
    """archive/<schema>/<table>/<partition>__<start>_<end>__run<id>.csv.gz"""
    return f"{_object_prefix(partition)}run{run_id}.csv.gz"


def _object_prefix(partition: Partition) -> str:
    table = partition.table
    return (
        f"{ARCHIVE_PREFIX}/{table.schema}/{table.name}/"
        f"{partition.name}__{partition.start}_{partition.end}__"
    )


def open_object(key: str):
    """Stream a stored object without holding it whole in memory or on disk.

    django-storages' S3 file downloads the whole object before the first read; a
    GET's streaming body reads as it goes.
    """
    storage = default_storage
    if hasattr(storage, "bucket") and hasattr(storage, "_normalize_name"):
        return storage.bucket.Object(storage._normalize_name(clean_name(key))).get()["Body"]
    return storage.open(key, "rb")


class HashingReader(io.RawIOBase):
    """Reads a stream, hashing and counting the bytes that pass."""

    def __init__(self, source):
        self._source = source
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._source.read(len(buffer))
        self.digest.update(data)
        self.size += len(data)
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(READ_CHUNK):
            pass

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            super().close()


class _HashingWriter(io.RawIOBase):
    def __init__(self, target):
        self._target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._target.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def drain(stream) -> None:
    """Read a stream to its end (a decrypting one authenticates its final chunk there)."""
    while stream.read(READ_CHUNK):
        pass


def remove_leftovers(partition: Partition) -> list[str]:
    """Delete objects an interrupted attempt left for this range that no manifest names."""
    prefix = _object_prefix(partition)
    folder, start = prefix.rsplit("/", 1)
    try:
        _dirs, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return []
    known = set(
        ArchivedPartition.objects.filter(object_key__startswith=prefix).values_list(
            "object_key", flat=True
        )
    )
    removed = []
    for name in files:
        key = f"{folder}/{name}"
        if name.startswith(start) and key not in known:
            default_storage.delete(key)
            removed.append(key)
    return removed


@dataclass
class Export:
    key: str
    rows: int
    byte_size: int
    sha256: str
    columns: list[str]
    key_id: str


def export_partition(cursor, partition: Partition, key: str) -> Export:
    """COPY the partition's rows as CSV (with a header) through gzip and encryption into
    storage; sha256 and byte size are those of the stored (encrypted) bytes.

    Memory stays bounded: COPY streams blocks into a temporary file, which storage
    then reads in chunks.
    """
    columns = table_columns(partition.table, cursor)
    column_sql = ", ".join(f'"{name}"' for name in columns)
    with tempfile.TemporaryFile() as spool:
        hashing = _HashingWriter(spool)
        with (
            envelope.EncryptingWriter(hashing, Keyring.from_settings()) as sealed,
            gzip.GzipFile(
                fileobj=sealed, mode="wb", mtime=0, compresslevel=COMPRESS_LEVEL
            ) as compressed,
            cursor.copy(
                f"COPY {partition.sql_name} ({column_sql}) TO STDOUT (FORMAT csv, HEADER)"
            ) as copy,
        ):
            for block in copy:
                compressed.write(block)
        rows = cursor.rowcount
        spool.seek(0)
        saved = default_storage.save(key, File(spool, name=key))
    if saved != key:
        default_storage.delete(saved)
        raise ArchiveError(f"object storage stored {key} as {saved}: an object of that name exists")
    return Export(key, rows, hashing.size, hashing.digest.hexdigest(), columns, sealed.key_id)


@dataclass
class ReadBack:
    sha256: str
    byte_size: int
    rows: int
    header: list[str]
    key_id: str | None


def _read_back(key: str) -> ReadBack:
    """What a stored archive holds, read from storage: sha256 and size of the stored
    bytes, then, decrypted, its data rows, CSV header and the key id wrapping it."""
    if not default_storage.exists(key):
        raise ArchiveError(f"the object {key} is missing from object storage")
    try:
        reader = HashingReader(open_object(key))
        opened = envelope.decrypting_reader(reader)
        with opened, gzip.GzipFile(fileobj=opened, mode="rb") as unzipped:
            lines = csv.reader(io.TextIOWrapper(unzipped, encoding="utf-8", newline=""))
            header = next(lines, [])
            rows = sum(1 for _row in lines)
            drain(opened)  # to the end: the final chunk authenticated, nothing after it
            reader.drain()
            return ReadBack(reader.digest.hexdigest(), reader.size, rows, header, opened.key_id)
    except (
        OSError,
        EOFError,
        zlib.error,
        UnicodeDecodeError,
        csv.Error,
        envelope.EnvelopeError,
    ) as error:
        raise ArchiveError(f"the object {key} cannot be read back: {error}") from error


def verify_object(
    *,
    key: str,
    sha256: str,
    rows: int,
    byte_size: int,
    columns: list[str] | None = None,
    key_id: str | None = None,
) -> None:
    """Read the object back from storage; ArchiveError unless it is exactly what was written.

    `key_id`, when given, is the key the object's data key must be wrapped by.
    """
    found = _read_back(key)
    problems = []
    if found.sha256 != sha256:
        problems.append(f"sha256 {found.sha256} instead of {sha256}")
    if found.byte_size != byte_size:
        problems.append(f"{found.byte_size} bytes instead of {byte_size}")
    if found.rows != rows:
        problems.append(f"{found.rows} rows instead of {rows}")
    if columns is not None and found.header != columns:
        problems.append(f"columns {found.header} instead of {columns}")
    if key_id is not None and found.key_id != key_id:
        problems.append(f"encrypted under key {found.key_id!r} instead of {key_id!r}")
    if problems:
        raise ArchiveError(f"verification of {key} failed: " + "; ".join(problems))
