import base64
import hashlib

import pytest
from django.core.exceptions import ImproperlyConfigured

from governance.compliance.keys import DecryptionError, Keyring, is_encrypted
from governance.compliance.tokens import TokenKeyring, canonical, is_token

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()


def test_round_trip_binds_the_field():
    keyring = Keyring.parse(f"a:{KEY_A}")
    token = keyring.encrypt("123-45-6789", context="7:ssn")
    assert is_encrypted(token)
    assert "123-45-6789" not in token
    assert token.startswith("enc:v1:a:")
    assert keyring.decrypt(token, context="7:ssn") == "123-45-6789"
    with pytest.raises(DecryptionError, match="does not decrypt"):
        keyring.decrypt(token, context="7:other_field")


def test_same_value_encrypts_differently_each_time():
    keyring = Keyring.parse(f"a:{KEY_A}")
    assert keyring.encrypt("x", context="c") != keyring.encrypt("x", context="c")


def test_rotation_new_key_first_old_still_decrypts():
    old = Keyring.parse(f"a:{KEY_A}")
    token = old.encrypt("secret", context="c")
    rotated = Keyring.parse(f"b:{KEY_B},a:{KEY_A}")
    assert rotated.needs_rotation(token)
    assert rotated.decrypt(token, context="c") == "secret"
    fresh = rotated.encrypt("secret", context="c")
    assert not rotated.needs_rotation(fresh)
    with pytest.raises(DecryptionError, match="key 'b'"):
        old.decrypt(fresh, context="c")


def test_tampered_value_is_refused():
    keyring = Keyring.parse(f"a:{KEY_A}")
    token = keyring.encrypt("secret", context="c")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(DecryptionError):
        keyring.decrypt(tampered, context="c")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "not set"),
        ("nokey", "must be 'key_id:base64key'"),
        ("a:!!!", "not valid base64"),
        (f"a:{base64.b64encode(b'short').decode()}", "must be 32 bytes"),
        (f"a:{KEY_A},a:{KEY_B}", "twice"),
    ],
)
def test_bad_key_configuration_says_what_is_wrong(spec, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        Keyring.parse(spec)


def test_settings_keyring_works():
    keyring = Keyring.from_settings()
    assert keyring.decrypt(keyring.encrypt("v", context="c"), context="c") == "v"


# --- Keyed tokens ----------------------------------------------------------------------

HASH_A = base64.b64encode(b"H" * 32).decode()
HASH_B = base64.b64encode(b"I" * 32).decode()


def test_equal_values_give_equal_tokens_and_hide_the_value():
    ring = TokenKeyring.parse(f"h:{HASH_A}")
    token = ring.token("123-45-6789")
    assert token == ring.token(" 123-45-6789 ")  # the canonical text is stripped
    assert token != ring.token("123-45-6788")
    assert "123-45-6789" not in token and "6789" not in token
    assert is_token(token) and token.startswith("tk:h:")


def test_tokens_depend_on_the_key_not_only_the_value():
    assert TokenKeyring.parse(f"h:{HASH_A}").token("x") != TokenKeyring.parse(f"h:{HASH_B}").token(
        "x"
    )
    # Nor on SECRET_KEY: a plain SHA-256 of the value is not the token.
    assert hashlib.sha256(b"x").hexdigest()[:10] not in TokenKeyring.parse(f"h:{HASH_A}").token("x")


def test_typed_values_are_tokenised_by_their_canonical_text():
    ring = TokenKeyring.parse(f"h:{HASH_A}")
    assert canonical("e\u0301") == canonical("\u00e9")  # NFC
    assert ring.token(12) == ring.token("12")  # a field has one type: 12 is its text
    assert canonical(True) == "true" and canonical(12) == "12"
    assert canonical({"b": 1, "a": 2}) == '{"a":2,"b":1}'


def test_rotation_lists_the_tokens_under_every_key():
    ring = TokenKeyring.parse(f"new:{HASH_B},old:{HASH_A}")
    old = TokenKeyring.parse(f"old:{HASH_A}").token("v")
    assert ring.current_id == "new" and not ring.is_current(old)
    assert old in ring.tokens_under_every_key("v")
    assert ring.is_current(ring.token("v"))


@pytest.mark.parametrize("spec", ["", "h", f"h:{base64.b64encode(b'short').decode()}", "h:%%%"])
def test_a_malformed_hash_key_is_refused_naming_the_setting(spec):
    with pytest.raises(ImproperlyConfigured, match="ATLAS_HASH_KEY"):
        TokenKeyring.parse(spec)


def test_a_token_is_the_hmac_sha256_of_the_canonical_text():
    import hmac

    key = b"H" * 32
    ring = TokenKeyring.parse("h:" + base64.b64encode(key).decode())
    expected = hmac.digest(key, b"123-45-6789", "sha256")[:24]
    assert ring.token(" 123-45-6789") == "tk:h:" + base64.urlsafe_b64encode(expected).decode()
