import base64

import pytest
from django.core.exceptions import ImproperlyConfigured

from governance.compliance.keys import DecryptionError, Keyring, is_encrypted

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
