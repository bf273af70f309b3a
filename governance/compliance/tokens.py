"""Keyed tokens: equality of sensitive values without the values.

A token is an HMAC-SHA256 of a value's canonical text under a key of ATLAS_HASH_KEY
("key_id:base64-of-32-bytes" entries, comma separated; the first key makes tokens).
Equal values give equal tokens under one key, so uniqueness, business keys, joins and
COUNT(DISTINCT …) work on tokens of encrypted values; without the key a token cannot
be looked up in a table of common values. The key is a secret of its own, never
derived from SECRET_KEY, so rotating one does not touch the other. Each token names
its key id: after a new key is put first, `manage.py retoken` makes every stored
token again under it, and lookups meanwhile try every listed key.

The same tokens are the fingerprints the audit log keeps of values it must not hold
(a steward's corrections, a password hash that changed).
"""

import base64
import hashlib
import json
import unicodedata
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from governance.compliance.keys import parse_key_spec

TOKEN_PREFIX = "tk:"  # noqa: S105 (a marker, not a secret)
TOKEN_BYTES = 24  # 192 bits of the digest: no collisions at any table size Atlas meets
_RINGS: dict[str, "TokenKeyring"] = {}


def canonical(value: Any) -> str:
    """The text a value is tokenised as: one text per typed value.

    Text is NFC-normalised and stripped, so the same name typed on two keyboards gives
    one token; numbers, booleans and dates are their JSON text (dates and datetimes are
    already ISO strings in chart).
    """
    if isinstance(value, str):
        text = value.strip()
        return text if text.isascii() else unicodedata.normalize("NFC", text)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(value)


_STATES: dict[bytes, tuple[Any, Any]] = {}


def _hmac_states(key: bytes):
    """SHA-256 states after HMAC's inner and outer padded keys (the key is 32 bytes)."""
    states = _STATES.get(key)
    if states is None:
        block = key.ljust(64, b"\0")
        states = _STATES[key] = (
            hashlib.sha256(bytes(byte ^ 0x36 for byte in block)),
            hashlib.sha256(bytes(byte ^ 0x5C for byte in block)),
        )
    return states


def is_token(value: object) -> bool:
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


@dataclass(frozen=True)
class TokenKeyring:
    keys: dict[str, bytes]
    current_id: str

    @classmethod
    def parse(cls, spec: str | None) -> "TokenKeyring":
        keys = parse_key_spec(spec, setting="ATLAS_HASH_KEY", exact_length=32)
        return cls(keys=keys, current_id=next(iter(keys)))

    @classmethod
    def from_settings(cls) -> "TokenKeyring":
        spec = settings.ATLAS_HASH_KEY
        ring = _RINGS.get(spec)
        if ring is None:
            ring = _RINGS[spec] = cls.parse(spec)
        return ring

    def token(self, value: Any, *, key_id: str | None = None) -> str:
        key_id = key_id or self.current_id
        inner, outer = _hmac_states(self.keys[key_id])
        # HMAC-SHA256 (RFC 2104) from the key's padded states hashed once: a promotion
        # makes a few tokens per record, and setting the key up per call (hmac.new,
        # hmac.digest) costs more than the hashing itself.
        digest_in = inner.copy()
        digest_in.update(canonical(value).encode("utf-8"))
        digest = outer.copy()
        digest.update(digest_in.digest())
        encoded = base64.urlsafe_b64encode(digest.digest()[:TOKEN_BYTES]).decode("ascii")
        return f"{TOKEN_PREFIX}{key_id}:{encoded}"

    def tokens_under_every_key(self, value: Any) -> list[str]:
        """The value's token under each listed key: what a lookup matches during a rotation."""
        return [self.token(value, key_id=key_id) for key_id in self.keys]

    def is_current(self, token: str) -> bool:
        return token.startswith(f"{TOKEN_PREFIX}{self.current_id}:")

    def sql_hmac_pads(self, purpose: str) -> tuple[bytes, bytes]:
        """HMAC-SHA256's inner and outer padded keys of a key derived for one purpose.

        PostgreSQL has sha256() but no HMAC without pgcrypto: with these two blocks as
        parameters, `sha256(outer || sha256(inner || message))` is the HMAC of the
        message, computed where the rows are. The blocks travel in the statement (and so
        may reach the server's logs or pg_stat_activity): they are of a key derived for
        `purpose` alone, which makes no token and opens no other purpose's digests.
        """
        inner, outer = _hmac_states(self.keys[self.current_id])
        digest_in = inner.copy()
        digest_in.update(b"atlas purpose:" + purpose.encode("utf-8"))
        digest = outer.copy()
        digest.update(digest_in.digest())
        block = digest.digest().ljust(64, b"\0")
        return bytes(byte ^ 0x36 for byte in block), bytes(byte ^ 0x5C for byte in block)


def fingerprint(value: Any) -> str | None:
    """A keyed token of a value for the audit log: shows that it changed, never what it is."""
    if value is None or value == "":
        return None
    return TokenKeyring.from_settings().token(value)
