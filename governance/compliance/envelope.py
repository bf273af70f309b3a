"""Envelope encryption of stored objects (landing files, archives), streamed in chunks.

Each object gets a random 32-byte data key, which encrypts its body; the data key is
kept in the object's header, wrapped (AES-256-GCM) by the current key of
ATLAS_ENCRYPTION_KEYS (`governance.compliance.keys.Keyring`), whose id the header
names. Any key still listed there opens the objects written under it, so keys rotate
by putting a new key first; `manage.py reencrypt_objects` then re-wraps each object's
data key under it without touching the body (`RewrappingReader`).

Format (integers big-endian; the header is 74 bytes plus the key id, each chunk adds 28):

    header  b"ATLASENV1"                magic: an encrypted object, format 1
            1 byte  n                   length of the key id (1..255)
            n bytes key id              UTF-8, the ATLAS_ENCRYPTION_KEYS entry that wraps
            4 bytes chunk size          plaintext bytes per chunk (65,536)
            12 bytes nonce              of the wrap
            48 bytes wrapped data key   AES-GCM(key, nonce, data key,
                                        AD = WRAP_LABEL + the header before the nonce)
    body    chunk 0, chunk 1, ...       each 12-byte nonce + AES-GCM(data key, nonce,
                                        plaintext, AD = magic + index (8) + last (1)) + tag

Every chunk but the last holds exactly `chunk size` plaintext bytes; the last holds
fewer (none when the size is a multiple of the chunk size), so a reader knows which
chunk is last from its length alone. The associated data binds each chunk's index and
the "last" flag, so a reordered, swapped, dropped or cut chunk fails to decrypt, an
object cut at a chunk boundary lacks its final chunk, and bytes after it are refused.
Each object has its own data key: a chunk of another object never decrypts.

An object without the magic is a plain one stored before encryption (legacy): readers
pass it through unchanged, unless the caller knows it must be encrypted.

Errors are `EnvelopeError` (a `keys.DecryptionError`) whose message says what is
wrong (unknown key id, tampered, truncated); they never carry the object's content.
"""

import io
import os
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.utils.crypto import get_random_string

from governance.compliance.keys import DecryptionError, Keyring

MAGIC = b"ATLASENV1"
CHUNK_BYTES = 64 * 1024
# A header naming a larger chunk is refused before anything is allocated for it.
MAX_CHUNK_BYTES = 16 * 1024 * 1024
DATA_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
WRAPPED_KEY_BYTES = DATA_KEY_BYTES + TAG_BYTES
# The wrap's associated data starts with this label, so a wrapped data key cannot be
# passed off as any other AES-GCM output of the same key ring (value tokens).
WRAP_LABEL = b"atlas:object-data-key:"
_CHUNK_AD = struct.Struct(">QB")


class EnvelopeError(DecryptionError):
    """An encrypted object that cannot be opened; the message says why (never its content)."""


def _read_exact(source, size: int) -> bytes:
    """`size` bytes, fewer only at the end of the stream (sources may return short reads)."""
    parts = []
    wanted = size
    while wanted > 0:
        data = source.read(wanted)
        if not data:
            break
        parts.append(data)
        wanted -= len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


# --- The header ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    key_id: str
    chunk_size: int
    wrap_nonce: bytes
    wrapped_key: bytes

    def prefix(self) -> bytes:
        """The header up to the wrap's nonce: what the wrap authenticates."""
        encoded = self.key_id.encode("utf-8")
        return MAGIC + bytes([len(encoded)]) + encoded + struct.pack(">I", self.chunk_size)

    def to_bytes(self) -> bytes:
        return self.prefix() + self.wrap_nonce + self.wrapped_key

    def data_key(self, keyring: Keyring) -> bytes:
        key = keyring.keys.get(self.key_id)
        if key is None:
            raise EnvelopeError(
                f"the object was encrypted with key {self.key_id!r}, which is not in "
                "ATLAS_ENCRYPTION_KEYS (keep a retired key listed until every object "
                "written under it is re-wrapped: manage.py reencrypt_objects)"
            )
        try:
            return AESGCM(key).decrypt(
                self.wrap_nonce, self.wrapped_key, WRAP_LABEL + self.prefix()
            )
        except InvalidTag:
            raise EnvelopeError(
                f"the object's data key does not unwrap with key {self.key_id!r}: its header "
                "was tampered with, or that key id now names a different key"
            ) from None


def _key_id_bytes(key_id: str) -> bytes:
    encoded = key_id.encode("utf-8")
    if not 1 <= len(encoded) <= 255:
        raise EnvelopeError(f"key id {key_id!r} must be 1 to 255 bytes of UTF-8")
    return encoded


def _wrap(data_key: bytes, keyring: Keyring, chunk_size: int) -> Header:
    key_id = keyring.current_id
    _key_id_bytes(key_id)
    unsealed = Header(key_id, chunk_size, os.urandom(NONCE_BYTES), b"")
    wrapped = AESGCM(keyring.keys[key_id]).encrypt(
        unsealed.wrap_nonce, data_key, WRAP_LABEL + unsealed.prefix()
    )
    return Header(key_id, chunk_size, unsealed.wrap_nonce, wrapped)


def _parse_header_after_magic(source) -> Header:
    """The rest of a header whose magic was just read from `source`."""
    truncated = "the object is truncated: it ends inside its encryption header"
    length = _read_exact(source, 1)
    if not length or length[0] == 0:
        raise EnvelopeError(truncated if not length else "the object's header is malformed")
    raw_id = _read_exact(source, length[0])
    rest = _read_exact(source, 4 + NONCE_BYTES + WRAPPED_KEY_BYTES)
    if len(raw_id) < length[0] or len(rest) < 4 + NONCE_BYTES + WRAPPED_KEY_BYTES:
        raise EnvelopeError(truncated)
    try:
        key_id = raw_id.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvelopeError("the object's header is malformed (its key id)") from None
    (chunk_size,) = struct.unpack(">I", rest[:4])
    if not 0 < chunk_size <= MAX_CHUNK_BYTES:
        raise EnvelopeError("the object's header is malformed (its chunk size)")
    return Header(key_id, chunk_size, rest[4 : 4 + NONCE_BYTES], rest[4 + NONCE_BYTES :])


def read_header(source) -> Header | None:
    """The header at the start of `source`, or None for a plain (legacy) object.

    Reads the header and nothing more from an encrypted object; from a plain one it
    reads up to len(MAGIC) bytes, so use `decrypting_reader` to read plain ones whole.
    """
    start = _read_exact(source, len(MAGIC))
    if start != MAGIC:
        return None
    return _parse_header_after_magic(source)


def key_id_of(header: bytes) -> str | None:
    """The key id an object's first bytes name; None when they are not an envelope."""
    if not header.startswith(MAGIC):
        return None
    return _parse_header_after_magic(io.BytesIO(header[len(MAGIC) :])).key_id


def rewrap_header(header: Header, keyring: Keyring) -> Header:
    """The same data key, wrapped by the key ring's current key (the body is unchanged)."""
    return _wrap(header.data_key(keyring), keyring, header.chunk_size)


class RewrappingReader(io.RawIOBase):
    """Reads as the encrypted object in `source` with its data key wrapped by the key
    ring's current key: a new header, then the body byte for byte (never decrypted).

    The header is read (and the data key unwrapped) when it is made, so an object it
    cannot open raises EnvelopeError before anything is written.
    """

    def __init__(self, source, keyring: Keyring | None = None):
        header = read_header(source)
        if header is None:
            raise EnvelopeError("the object is not encrypted: it has no data key to re-wrap")
        self._source = source
        self.old_key_id = header.key_id
        self.header = rewrap_header(header, keyring or Keyring.from_settings())
        self.key_id = self.header.key_id
        self._pending = memoryview(self.header.to_bytes())

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._pending:
            size = min(len(buffer), len(self._pending))
            buffer[:size] = self._pending[:size]
            self._pending = self._pending[size:]
            return size
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            super().close()


_REWRAP_SUFFIX = re.compile(r"_[A-Za-z0-9]{7}$")


def rewrapped_name(name: str) -> str:
    """A new object name beside `name` for its re-wrapped copy (objects are never
    replaced in place: the old one goes only once the new one is checked and recorded).

    'a/b/people.csv.gz' -> 'a/b/people_Xk3v9Qa.csv.gz'; a suffix from an earlier
    rotation is replaced, not added to.
    """
    folder, _slash, base = name.rpartition("/")
    stem, dot, extensions = base.partition(".")
    stem = _REWRAP_SUFFIX.sub("", stem) or stem
    fresh = f"{stem}_{get_random_string(7)}{dot}{extensions}"
    return f"{folder}/{fresh}" if folder else fresh


# --- Encrypting -------------------------------------------------------------------------


class _Sealer:
    """Encrypts an object's chunks in order, with the data key and its header."""

    def __init__(self, keyring: Keyring, chunk_size: int):
        if not 0 < chunk_size <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk size must be 1 to {MAX_CHUNK_BYTES} bytes")
        data_key = AESGCM.generate_key(bit_length=8 * DATA_KEY_BYTES)
        self.header = _wrap(data_key, keyring, chunk_size)
        self.chunk_size = chunk_size
        self._cipher = AESGCM(data_key)
        self._index = 0
        self.finished = False

    def seal(self, plain: bytes, *, last: bool) -> bytes:
        if self.finished:
            raise ValueError("the object's final chunk was already written")
        if last != (len(plain) < self.chunk_size) or len(plain) > self.chunk_size:
            raise ValueError("only the last chunk is shorter than the chunk size")
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher.encrypt(nonce, plain, MAGIC + _CHUNK_AD.pack(self._index, last))
        self._index += 1
        self.finished = last
        return nonce + sealed


class EncryptingWriter(io.RawIOBase):
    """Write plaintext, get the encrypted object written to `target`.

    `close()` writes the final chunk; the object is incomplete (and refused by readers)
    until then. `target` is not closed. Memory: one chunk.
    """

    def __init__(self, target, keyring: Keyring | None = None, *, chunk_size: int = CHUNK_BYTES):
        self._target = target
        self._sealer = _Sealer(keyring or Keyring.from_settings(), chunk_size)
        self.key_id = self._sealer.header.key_id
        self.plain_size = 0
        self._buffer = bytearray()
        target.write(self._sealer.header.to_bytes())

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self.closed:
            raise ValueError("write to a closed EncryptingWriter")
        view = memoryview(data).cast("B")
        size = len(view)
        self.plain_size += size
        chunk = self._sealer.chunk_size
        offset = 0
        if self._buffer:
            offset = min(size, chunk - len(self._buffer))
            self._buffer += view[:offset]
            if len(self._buffer) < chunk:
                return size
            self._target.write(self._sealer.seal(bytes(self._buffer), last=False))
            self._buffer.clear()
        while size - offset >= chunk:
            self._target.write(self._sealer.seal(bytes(view[offset : offset + chunk]), last=False))
            offset += chunk
        self._buffer += view[offset:]
        return size

    def close(self) -> None:
        if not self.closed:
            try:
                # (Not when garbage collection closes a writer whose target is gone.)
                if not getattr(self._target, "closed", False):
                    self._target.write(self._sealer.seal(bytes(self._buffer), last=True))
                    self._buffer.clear()
            finally:
                super().close()


class EncryptingReader(io.RawIOBase):
    """Reads as the encrypted object of `source`'s plaintext, one chunk in memory.

    Not seekable: it encrypts as it is read (each object has its own data key and
    nonces). `File(EncryptingReader(...))` can be handed to `Storage.save`: the
    filesystem storage reads its chunks(), S3 uploads a non-seekable stream in parts.
    """

    def __init__(self, source, keyring: Keyring | None = None, *, chunk_size: int = CHUNK_BYTES):
        self._source = source
        self._sealer = _Sealer(keyring or Keyring.from_settings(), chunk_size)
        self.key_id = self._sealer.header.key_id
        self.plain_size = 0
        self._pending = memoryview(self._sealer.header.to_bytes())

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            if self._sealer.finished:
                return 0
            plain = _read_exact(self._source, self._sealer.chunk_size)
            self.plain_size += len(plain)
            last = len(plain) < self._sealer.chunk_size
            self._pending = memoryview(self._sealer.seal(plain, last=last))
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def encrypting_reader(
    plain_file, keyring: Keyring | None = None, *, chunk_size: int = CHUNK_BYTES
) -> EncryptingReader:
    """A stream of the encrypted object of `plain_file` (read from its current position)."""
    return EncryptingReader(plain_file, keyring, chunk_size=chunk_size)


def encrypt_bytes(plain: bytes, keyring: Keyring | None = None, **options) -> bytes:
    """The encrypted object of `plain` (small objects and tests)."""
    return encrypting_reader(io.BytesIO(plain), keyring, **options).read()


# --- Decrypting -------------------------------------------------------------------------


class DecryptingReader(io.RawIOBase):
    """Reads as the plaintext of the object in `source`, one chunk in memory.

    An object that does not start with the magic is plain (stored before encryption)
    and passes through unchanged, unless `require_encrypted`. After the first read,
    `key_id` names the key its data key is wrapped by (None for a plain object).
    The end of the plaintext is reported only once the final chunk decrypted and
    nothing follows it.
    """

    def __init__(self, source, keyring: Keyring | None = None, *, require_encrypted=False):
        self._source = source
        self._keyring = keyring
        self._require_encrypted = require_encrypted
        self._started = False
        self._plain_passthrough = False
        self._cipher: AESGCM | None = None
        self.header: Header | None = None
        self.key_id: str | None = None
        self._chunk_size = 0
        self._index = 0
        self._done = False
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def _start(self) -> None:
        self._started = True
        start = _read_exact(self._source, len(MAGIC))
        if start != MAGIC:
            if self._require_encrypted:
                raise EnvelopeError(
                    "the object is not encrypted although it was stored encrypted: it was "
                    "replaced or damaged"
                )
            self._plain_passthrough = True
            self._pending = memoryview(start)
            return
        self.header = _parse_header_after_magic(self._source)
        self.key_id = self.header.key_id
        keyring = self._keyring or Keyring.from_settings()
        self._cipher = AESGCM(self.header.data_key(keyring))
        self._chunk_size = self.header.chunk_size

    def _next_chunk(self) -> bytes:
        record_size = NONCE_BYTES + self._chunk_size + TAG_BYTES
        record = _read_exact(self._source, record_size)
        last = len(record) < record_size
        if not record:
            raise EnvelopeError(
                "the object is truncated: it ends "
                + (f"after chunk {self._index - 1}" if self._index else "after its header")
                + ", without its final chunk"
            )
        if len(record) < NONCE_BYTES + TAG_BYTES:
            raise EnvelopeError(f"the object is truncated: it ends inside chunk {self._index}")
        try:
            plain = self._cipher.decrypt(
                record[:NONCE_BYTES],
                record[NONCE_BYTES:],
                MAGIC + _CHUNK_AD.pack(self._index, last),
            )
        except InvalidTag:
            raise EnvelopeError(
                f"chunk {self._index} of the object does not decrypt: the object was "
                + ("truncated or tampered with" if last else "tampered with (or its chunks moved)")
            ) from None
        self._index += 1
        if last:
            if _read_exact(self._source, 1):
                raise EnvelopeError(
                    "the object has data after its final chunk: it was tampered with"
                )
            self._done = True
        return plain

    def readinto(self, buffer) -> int:
        if not self._started:
            self._start()
        if not self._pending:
            if self._plain_passthrough:
                data = self._source.read(len(buffer))
                buffer[: len(data)] = data
                return len(data)
            while not self._pending and not self._done:
                self._pending = memoryview(self._next_chunk())
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            super().close()


def decrypting_reader(
    stored_stream, keyring: Keyring | None = None, *, require_encrypted: bool = False
) -> DecryptingReader:
    """A stream of the plaintext of a stored object (a legacy plain one passes through).

    The key ring is read from settings only when the object is encrypted. Closing the
    reader closes `stored_stream`.
    """
    return DecryptingReader(stored_stream, keyring, require_encrypted=require_encrypted)


def decrypt_bytes(stored: bytes, keyring: Keyring | None = None, **options) -> bytes:
    """The plaintext of a stored object's bytes (small objects and tests)."""
    return decrypting_reader(io.BytesIO(stored), keyring, **options).read()
