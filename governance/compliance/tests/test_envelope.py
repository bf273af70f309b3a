"""Envelope encryption of stored objects: round trips, every way of damaging one, rotation."""

import base64
import gzip
import io
import os

import pytest
from django.test import override_settings

from governance.compliance import envelope
from governance.compliance.envelope import (
    CHUNK_BYTES,
    MAGIC,
    EnvelopeError,
    decrypt_bytes,
    decrypting_reader,
    encrypt_bytes,
    encrypting_reader,
    key_id_of,
)
from governance.compliance.keys import DecryptionError, Keyring

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()
OLD = Keyring.parse(f"old:{KEY_A}")
SECRET = b"patient=Zebediah Quonset-7731;ssn=078-05-1120;"
SMALL = 1024  # chunk size for tests that need many chunks cheaply
HEADER = len(MAGIC) + 1 + len("old") + 4 + 12 + 48
RECORD = 12 + SMALL + 16  # one full chunk as stored


def content(size: int) -> bytes:
    """`size` bytes that repeat SECRET, so a leak of any part of it would show."""
    return (SECRET * (size // len(SECRET) + 1))[:size]


class ShortReads(io.RawIOBase):
    """A source that returns at most `most` bytes per read, as network streams may."""

    def __init__(self, data: bytes, most: int):
        self._data = io.BytesIO(data)
        self._most = most
        self.largest_read = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        self.largest_read = max(self.largest_read, len(buffer))
        chunk = self._data.read(min(len(buffer), self._most))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize(
    "size",
    [0, 1, len(SECRET), CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 5 * CHUNK_BYTES + 77],
)
def test_round_trip_of_every_size(size):
    plain = content(size)
    stored = encrypt_bytes(plain, OLD)
    assert stored.startswith(MAGIC)
    assert SECRET not in stored
    full_chunks = size // CHUNK_BYTES
    # Every chunk but the last is full; the last is shorter (empty for a multiple).
    assert len(stored) == HEADER + (full_chunks + 1) * 28 + size
    assert decrypt_bytes(stored, OLD) == plain
    # Read in odd pieces from a stream that returns short reads.
    reader = decrypting_reader(ShortReads(stored, 1000), OLD)
    pieces = []
    while piece := reader.read(777):
        pieces.append(piece)
    assert b"".join(pieces) == plain
    assert reader.key_id == "old"


def test_the_writer_and_the_reader_make_the_same_format():
    plain = content(3 * SMALL + 5)
    target = io.BytesIO()
    with envelope.EncryptingWriter(target, OLD, chunk_size=SMALL) as writer:
        for start in range(0, len(plain), 333):
            writer.write(plain[start : start + 333])
        writer.write(b"")
    assert writer.plain_size == len(plain)
    stored = target.getvalue()
    assert len(stored) == HEADER + 4 * 28 + len(plain)
    assert decrypt_bytes(stored, OLD) == plain
    # One big write spanning many chunks.
    target = io.BytesIO()
    with envelope.EncryptingWriter(target, OLD, chunk_size=SMALL) as writer:
        writer.write(plain)
    assert decrypt_bytes(target.getvalue(), OLD) == plain


def test_memory_stays_bounded_by_the_chunk():
    source = ShortReads(content(50 * SMALL), SMALL)
    sealed = encrypting_reader(source, OLD, chunk_size=SMALL)
    stored = b""
    while block := sealed.read(10_000):
        assert len(block) <= RECORD
        stored += block
    assert source.largest_read <= SMALL
    opened = decrypting_reader(ShortReads(stored, 4096), OLD)
    assert max(len(piece) for piece in iter(lambda: opened.read(1 << 20), b"")) <= SMALL


def test_same_plaintext_encrypts_differently_each_time():
    assert encrypt_bytes(SECRET, OLD) != encrypt_bytes(SECRET, OLD)


def test_the_header_names_the_key():
    stored = encrypt_bytes(SECRET, OLD)
    assert key_id_of(stored[:HEADER]) == "old"
    assert key_id_of(stored) == "old"
    assert key_id_of(b"id,name\n1,x\n") is None
    assert key_id_of(gzip.compress(SECRET)) is None
    header = envelope.read_header(io.BytesIO(stored))
    assert (header.key_id, header.chunk_size) == ("old", CHUNK_BYTES)
    with pytest.raises(EnvelopeError, match="truncated"):
        key_id_of(stored[: HEADER - 1])


def test_the_current_key_comes_from_settings_when_none_is_given():
    with override_settings(ATLAS_ENCRYPTION_KEYS=f"new:{KEY_B},old:{KEY_A}"):
        stored = encrypt_bytes(SECRET)
        assert key_id_of(stored) == "new"
        assert decrypt_bytes(stored) == SECRET


# --- Damage: every way fails, with a message that says which, never the content ----------


def many_chunks() -> tuple[bytes, bytes]:
    plain = content(4 * SMALL + 100)
    return plain, encrypt_bytes(plain, OLD, chunk_size=SMALL)


def chunk(stored: bytes, index: int) -> bytes:
    start = HEADER + index * RECORD
    return stored[start : start + RECORD]


def refused(stored: bytes, match: str, keyring: Keyring = OLD) -> str:
    with pytest.raises(EnvelopeError, match=match) as caught:
        decrypt_bytes(stored, keyring)
    message = str(caught.value)
    for leak in (SECRET[:8], b"Zebediah", b"078-05"):
        assert leak.decode() not in message
    assert isinstance(caught.value, DecryptionError)
    return message


def test_a_flipped_byte_in_the_body_is_refused():
    _plain, stored = many_chunks()
    at = HEADER + RECORD + 40  # inside chunk 1
    damaged = stored[:at] + bytes([stored[at] ^ 1]) + stored[at + 1 :]
    refused(damaged, r"chunk 1 of the object does not decrypt: the object was tampered with")


def test_a_flipped_byte_in_the_header_is_refused():
    _plain, stored = many_chunks()
    for at in (HEADER - 5, HEADER - 60, len(MAGIC) + 5):  # wrapped key, wrap nonce, chunk size
        damaged = stored[:at] + bytes([stored[at] ^ 1]) + stored[at + 1 :]
        refused(damaged, "does not unwrap with key 'old'|header is malformed")


def test_chunks_reordered_dropped_or_duplicated_are_refused():
    _plain, stored = many_chunks()
    head, c0, c1, c2 = stored[:HEADER], chunk(stored, 0), chunk(stored, 1), chunk(stored, 2)
    rest = stored[HEADER + 3 * RECORD :]
    refused(head + c1 + c0 + c2 + rest, "chunk 0 of the object does not decrypt")
    refused(head + c0 + c2 + rest, "chunk 1 of the object does not decrypt")
    refused(head + c0 + c0 + c1 + c2 + rest, "chunk 1 of the object does not decrypt")


def test_a_chunk_of_another_object_is_refused():
    _plain, stored = many_chunks()
    _other_plain, other = many_chunks()
    swapped = stored[: HEADER + RECORD] + chunk(other, 1) + stored[HEADER + 2 * RECORD :]
    refused(swapped, "chunk 1 of the object does not decrypt")
    # Nor does another object's header open this body.
    refused(other[:HEADER] + stored[HEADER:], "chunk 0 of the object does not decrypt")


@pytest.mark.parametrize(
    ("cut", "match"),
    [
        (lambda n: n - 1, r"chunk 4 of the object does not decrypt: the object was truncated"),
        (lambda n: HEADER + 4 * RECORD, "truncated: it ends after chunk 3, without its final"),
        (lambda n: HEADER + 2 * RECORD + 500, "chunk 2 .* truncated or tampered with"),
        (lambda n: HEADER + 2 * RECORD + 20, "truncated: it ends inside chunk 2"),
        (lambda n: HEADER, "truncated: it ends after its header, without its final chunk"),
        (lambda n: HEADER - 10, "truncated: it ends inside its encryption header"),
        (lambda n: len(MAGIC), "truncated: it ends inside its encryption header"),
    ],
)
def test_a_truncated_object_is_refused(cut, match):
    _plain, stored = many_chunks()
    refused(stored[: cut(len(stored))], match)


def test_an_object_whose_size_is_a_multiple_of_the_chunk_cannot_lose_its_last_chunk():
    stored = encrypt_bytes(content(3 * SMALL), OLD, chunk_size=SMALL)
    assert len(stored) == HEADER + 3 * RECORD + 28  # an empty final chunk
    refused(stored[: HEADER + 3 * RECORD], "ends after chunk 2, without its final chunk")


def test_data_after_the_final_chunk_is_refused():
    _plain, stored = many_chunks()
    refused(stored + b"more", "chunk 4 of the object does not decrypt")
    refused(stored + encrypt_bytes(b"", OLD)[HEADER:], "chunk 4 of the object does not decrypt")


def test_a_key_that_is_not_listed_or_not_the_same_is_refused():
    _plain, stored = many_chunks()
    message = refused(
        stored,
        "encrypted with key 'old', which is not in ATLAS_ENCRYPTION_KEYS",
        Keyring.parse(f"new:{KEY_B}"),
    )
    assert KEY_A not in message and KEY_B not in message
    # The same key id naming another key: the data key does not unwrap.
    refused(stored, "does not unwrap with key 'old'", Keyring.parse(f"old:{KEY_B}"))


# --- Plain objects stored before encryption ---------------------------------------------


@pytest.mark.parametrize(
    "plain", [b"", b"x", b"ATLAS", b"id,name\n1,Ann\n", gzip.compress(SECRET * 1000)]
)
def test_a_plain_object_stored_before_encryption_reads_as_it_is(plain):
    reader = decrypting_reader(ShortReads(plain, 3), OLD)
    assert reader.read() == plain
    assert reader.key_id is None
    # No key ring is needed for one.
    with override_settings(ATLAS_ENCRYPTION_KEYS=None):
        assert decrypt_bytes(plain) == plain


def test_a_plain_object_where_an_encrypted_one_must_be_is_refused():
    with pytest.raises(EnvelopeError, match="not encrypted although it was stored encrypted"):
        decrypt_bytes(b"id,name\n1,Ann\n", OLD, require_encrypted=True)
    assert decrypt_bytes(encrypt_bytes(SECRET, OLD), OLD, require_encrypted=True) == SECRET


# --- Key rotation -------------------------------------------------------------------------


def test_an_object_under_an_older_key_reads_while_that_key_is_listed():
    plain = content(2 * CHUNK_BYTES + 3)
    stored = encrypt_bytes(plain, OLD)
    with override_settings(ATLAS_ENCRYPTION_KEYS=f"new:{KEY_B},old:{KEY_A}"):
        assert decrypt_bytes(stored) == plain
        assert key_id_of(encrypt_bytes(plain)) == "new"
    with (
        override_settings(ATLAS_ENCRYPTION_KEYS=f"new:{KEY_B}"),
        pytest.raises(EnvelopeError, match="key 'old', which is not in"),
    ):
        decrypt_bytes(stored)


def test_rewrapping_moves_the_data_key_to_the_current_key_and_keeps_the_body():
    plain = content(3 * SMALL + 1)
    stored = encrypt_bytes(plain, OLD, chunk_size=SMALL)
    rotated = Keyring.parse(f"new:{KEY_B},old:{KEY_A}")
    source = io.BytesIO(stored)
    header = envelope.read_header(source)
    body = source.read()
    new_header = envelope.rewrap_header(header, rotated)
    assert new_header.key_id == "new"
    rewrapped = new_header.to_bytes() + body
    assert rewrapped.endswith(stored[HEADER:])  # the body is untouched
    assert decrypt_bytes(rewrapped, Keyring.parse(f"new:{KEY_B}")) == plain
    with pytest.raises(EnvelopeError, match="key 'new', which is not in"):
        decrypt_bytes(rewrapped, OLD)


def test_a_random_body_is_never_taken_for_plaintext():
    noise = MAGIC + os.urandom(500)
    with pytest.raises(EnvelopeError):
        decrypt_bytes(noise, OLD)


def test_the_rewrapping_reader_streams_a_new_header_and_the_same_body():
    plain = content(3 * SMALL + 9)
    stored = encrypt_bytes(plain, OLD, chunk_size=SMALL)
    rotated = Keyring.parse(f"new:{KEY_B},old:{KEY_A}")
    reader = envelope.RewrappingReader(ShortReads(stored, 500), rotated)
    assert (reader.old_key_id, reader.key_id) == ("old", "new")
    rewrapped = reader.read()
    assert rewrapped[HEADER:] == stored[HEADER:]
    assert decrypt_bytes(rewrapped, Keyring.parse(f"new:{KEY_B}")) == plain
    with pytest.raises(EnvelopeError, match="not encrypted: it has no data key to re-wrap"):
        envelope.RewrappingReader(io.BytesIO(b"id,name\n"), rotated)
    with pytest.raises(EnvelopeError, match="key 'old', which is not in"):
        envelope.RewrappingReader(io.BytesIO(stored), Keyring.parse(f"new:{KEY_B}"))


def test_a_rewrapped_object_gets_a_name_beside_the_old_one():
    name = envelope.rewrapped_name("landing/orders/2026/11/26/abc/people.csv.gz")
    assert name.startswith("landing/orders/2026/11/26/abc/people_") and name.endswith(".csv.gz")
    again = envelope.rewrapped_name(name)
    assert len(again) == len(name) and again != name  # the earlier suffix is replaced
    assert envelope.rewrapped_name("plain").startswith("plain_")
