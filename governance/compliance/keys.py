"""Authenticated encryption of restricted values (AES-256-GCM).

Keys come from ATLAS_ENCRYPTION_KEYS as "key_id:base64-of-32-bytes" entries, comma
separated. The first key encrypts; every listed key decrypts, so keys rotate by
putting a new key first and re-encrypting (`manage.py reencrypt`). Each token names
its key id, and the field it belongs to is bound in as associated data, so a value
copied into another field does not decrypt.
"""

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ENCRYPTED_PREFIX = "enc:v1:"
NONCE_BYTES = 12
# Building an AESGCM object per value costs more than the encryption itself.
_CIPHERS: dict[tuple[str, bytes], AESGCM] = {}


class DecryptionError(ValueError):
    pass


def parse_key_spec(spec: str | None, *, setting: str, exact_length: int) -> dict[str, bytes]:
    """Key id -> key from "key_id:base64-key" entries, comma separated, the first current."""
    if not spec:
        raise ImproperlyConfigured(f"{setting} is not set.")
    keys: dict[str, bytes] = {}
    for position, entry in enumerate(part.strip() for part in spec.split(",") if part.strip()):
        key_id, separator, encoded = entry.partition(":")
        if not separator or not key_id:
            raise ImproperlyConfigured(
                f"{setting} entry {position + 1} must be 'key_id:base64key'."
            )
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise ImproperlyConfigured(f"{setting} key {key_id!r} is not valid base64.") from error
        if len(key) != exact_length:
            raise ImproperlyConfigured(
                f"{setting} key {key_id!r} must be {exact_length} bytes, it is {len(key)}."
            )
        if key_id in keys:
            raise ImproperlyConfigured(f"{setting} names {key_id!r} twice.")
        keys[key_id] = key
    if not keys:
        raise ImproperlyConfigured(f"{setting} holds no key.")
    return keys


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes]
    current_id: str

    @classmethod
    def parse(cls, spec: str | None) -> "Keyring":
        keys = parse_key_spec(spec, setting="ATLAS_ENCRYPTION_KEYS", exact_length=32)
        return cls(keys=keys, current_id=next(iter(keys)))

    @classmethod
    def from_settings(cls) -> "Keyring":
        return cls.parse(settings.ATLAS_ENCRYPTION_KEYS)

    def _cipher(self, key_id: str) -> AESGCM:
        cipher = _CIPHERS.get((key_id, self.keys[key_id]))
        if cipher is None:
            cipher = _CIPHERS[(key_id, self.keys[key_id])] = AESGCM(self.keys[key_id])
        return cipher

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher(self.current_id).encrypt(
            nonce, plaintext.encode("utf-8"), context.encode("utf-8")
        )
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{ENCRYPTED_PREFIX}{self.current_id}:{body}"

    def decrypt(self, token: str, *, context: str) -> str:
        key_id, body = parse_token(token)
        if key_id not in self.keys:
            raise DecryptionError(f"the value was encrypted with key {key_id!r}, which is not set")
        try:
            raw = base64.urlsafe_b64decode(body.encode("ascii"))
            opened = self._cipher(key_id).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode("utf-8")
            )
        except (InvalidTag, binascii.Error, ValueError) as error:
            raise DecryptionError(
                "the value does not decrypt (tampered, or another field's)"
            ) from error
        return opened.decode("utf-8")

    def needs_rotation(self, token: str) -> bool:
        return parse_token(token)[0] != self.current_id


def is_encrypted(value: object) -> bool:
    return isinstance(value, str) and value.startswith(ENCRYPTED_PREFIX)


def parse_token(token: str) -> tuple[str, str]:
    if not is_encrypted(token):
        raise DecryptionError("not an Atlas encrypted value")
    key_id, separator, body = token[len(ENCRYPTED_PREFIX) :].partition(":")
    if not separator:
        raise DecryptionError("malformed encrypted value")
    return key_id, body


def field_context(dataset_id: int, field_name: str) -> str:
    return f"{dataset_id}:{field_name}"
