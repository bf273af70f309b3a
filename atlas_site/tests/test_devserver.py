"""The development server listens on loopback unless told otherwise, and a server other
machines can reach never runs on the development keys written in this repository, nor with
debug pages unless that is said twice (atlas_site/devserver.py, settings/local.py, bin/run).

bin/run itself installs and starts services, so its decision is tested through what it
calls: `decide_bind` from bin/_lib.sh (which runs atlas_site/devserver.py), and the settings
in a fresh Python each.
"""

import base64
import os
import subprocess
import sys

import pytest

from atlas_site import devserver
from atlas_site.tests.test_settings import BASE_DIR, run_python

EVERY_IPV4 = "0.0.0.0"  # noqa: S104  (what a network run listens on; nothing listens here)
OWN_KEYS = {
    "SECRET_KEY": "n8Vq2-Lr5Tz1Wc7Yb3Hm6Kp0Xd4Fs9Jg2Qe5Ua8Ro1Ci3Nv7Bx0Mt6Pw4Ly2Dk9Zh",
    "ATLAS_ENCRYPTION_KEYS": "k1:" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode(),
    "ATLAS_HASH_KEY": "h1:" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode(),
}


# --- The decision -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        (EVERY_IPV4, False),
        ("::", False),
        ("192.168.1.20", False),
        ("atlas.example.com", False),  # a name may resolve to anything
    ],
)
def test_only_loopback_counts_as_local(host, loopback):
    assert devserver.is_loopback(host) is loopback
    assert devserver.debug_default(host) is loopback


def test_the_server_listens_on_loopback_unless_atlas_bind_says_otherwise():
    assert devserver.bind_host({}) == "127.0.0.1"
    assert devserver.bind_host({"ATLAS_BIND": " "}) == "127.0.0.1"
    assert devserver.bind_host({"ATLAS_BIND": "0"}) == EVERY_IPV4
    assert devserver.bind_host({"ATLAS_BIND": "[::]"}) == "::"
    assert devserver.bind_host({"ATLAS_BIND": "Dev-Box.local"}) == "dev-box.local"
    for bad in ("1.2.3.4:80", "a b", "http://x", "-h"):
        with pytest.raises(devserver.BindError, match="ATLAS_BIND"):
            devserver.bind_host({"ATLAS_BIND": bad})


@pytest.mark.parametrize(
    ("argv", "host"),
    [
        (["manage.py", "migrate"], None),
        (["manage.py", "runserver"], "127.0.0.1"),
        (["manage.py", "runserver", "8000"], "127.0.0.1"),
        (["manage.py", "runserver", "-6"], "::1"),
        (["manage.py", "runserver", "0:8000"], EVERY_IPV4),
        (["manage.py", "runserver", "[::]:8000"], "::"),
        (["manage.py", "runserver", "--noreload", "192.168.1.20:8000"], "192.168.1.20"),
        (
            ["manage.py", "runserver", "--settings", "atlas_site.settings.local", "0.0.0.0:80"],
            EVERY_IPV4,
        ),
    ],
)
def test_a_runserver_typed_by_hand_is_judged_by_its_address(argv, host):
    assert devserver.runserver_host(argv) == host
    assert devserver.listening_host(argv, {"ATLAS_BIND": "127.0.0.1"}) == (host or "127.0.0.1")


def test_on_loopback_the_development_defaults_stand():
    assert devserver.refusal("127.0.0.1", {}) is None
    assert devserver.refusal("::1", {"DEBUG": "true"}) is None
    assert devserver.warning("127.0.0.1", {}) is None


def test_a_network_address_needs_keys_of_ones_own():
    reason = devserver.refusal(EVERY_IPV4, {})
    assert "other machines can reach" in reason
    assert "SECRET_KEY, ATLAS_ENCRYPTION_KEYS, ATLAS_HASH_KEY" in reason
    partly = devserver.refusal("192.168.1.20", {"SECRET_KEY": OWN_KEYS["SECRET_KEY"]})
    assert "set ATLAS_ENCRYPTION_KEYS, ATLAS_HASH_KEY of your own" in partly
    assert devserver.refusal("192.168.1.20", OWN_KEYS) is None


def test_debug_pages_on_a_network_address_must_be_asked_for_twice():
    reason = devserver.refusal(EVERY_IPV4, {**OWN_KEYS, "DEBUG": "true"})
    assert "ATLAS_ALLOW_NETWORK_DEBUG=true" in reason
    allowed = {**OWN_KEYS, "DEBUG": "true", "ATLAS_ALLOW_NETWORK_DEBUG": "true"}
    assert devserver.refusal(EVERY_IPV4, allowed) is None
    assert "DEBUG is ON" in devserver.warning(EVERY_IPV4, allowed)
    assert "DEBUG is ON" not in devserver.warning(EVERY_IPV4, OWN_KEYS)


# --- bin/run's step (bin/_lib.sh decide_bind) ------------------------------------------------


def decide_bind(env: dict[str, str]) -> subprocess.CompletedProcess:
    script = (
        f'source bin/_lib.sh; VENV_PY="{sys.executable}"; decide_bind 8123; '
        'printf "%s\\n%s\\n" "$ATLAS_BIND" "$RUNSERVER_ADDRPORT"'
    )
    return subprocess.run(
        ["bash", "-c", script],
        cwd=BASE_DIR,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bin_run_listens_on_loopback_by_default():
    result = decide_bind({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["127.0.0.1", "127.0.0.1:8123"]
    assert "WARNING" not in result.stderr


def test_bin_run_warns_before_listening_on_a_network_address():
    result = decide_bind({"ATLAS_BIND": EVERY_IPV4, **OWN_KEYS})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [EVERY_IPV4, "0.0.0.0:8123"]
    assert "WARNING: the development server will listen on 0.0.0.0" in result.stderr

    result = decide_bind({"ATLAS_BIND": "::", **OWN_KEYS})
    assert result.stdout.splitlines() == ["::", "[::]:8123"]


def test_bin_run_refuses_a_network_address_with_the_development_keys():
    result = decide_bind({"ATLAS_BIND": EVERY_IPV4})
    assert result.returncode != 0
    assert result.stdout == ""
    assert "SECRET_KEY, ATLAS_ENCRYPTION_KEYS, ATLAS_HASH_KEY of your own" in result.stderr
    assert "ERROR: Not starting Atlas" in result.stderr


def test_bin_run_starts_the_web_server_where_decide_bind_says():
    script = (BASE_DIR / "bin" / "run").read_text()
    assert 'decide_bind "$PORT"' in script
    assert 'manage.py runserver "$RUNSERVER_ADDRPORT"' in script
    assert EVERY_IPV4 not in script
    # Decided before any service is started or migration run.
    assert script.index('decide_bind "$PORT"') < script.index("decide_database")


# --- The settings a run can pick up ------------------------------------------------------------

LOCAL = {"DJANGO_SETTINGS_MODULE": "atlas_site.settings.local"}
SHOW = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.DEBUG, s.ATLAS_BIND, s.SECRET_KEY[:12])"
)


def test_local_settings_on_loopback_keep_their_development_defaults():
    result = run_python(SHOW, env=LOCAL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "127.0.0.1", "atlas-local-"]


def test_local_settings_refuse_a_network_address_without_keys_of_ones_own():
    result = run_python(SHOW, env={**LOCAL, "ATLAS_BIND": EVERY_IPV4})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY, ATLAS_ENCRYPTION_KEYS, ATLAS_HASH_KEY" in result.stderr.splitlines()[-1]


def test_local_settings_on_a_network_address_run_without_debug():
    result = run_python(SHOW, env={**LOCAL, "ATLAS_BIND": EVERY_IPV4, **OWN_KEYS})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", EVERY_IPV4, OWN_KEYS["SECRET_KEY"][:12]]

    debug = {**LOCAL, "ATLAS_BIND": EVERY_IPV4, **OWN_KEYS, "DEBUG": "true"}
    result = run_python(SHOW, env=debug)
    assert result.returncode != 0
    assert "ATLAS_ALLOW_NETWORK_DEBUG" in result.stderr.splitlines()[-1]
    result = run_python(SHOW, env={**debug, "ATLAS_ALLOW_NETWORK_DEBUG": "true"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "True"


def test_runserver_typed_by_hand_on_a_network_address_is_refused_too():
    # sys.argv as `manage.py runserver 0.0.0.0:8000` would have it.
    result = run_python(SHOW, env=LOCAL, args=("runserver", "0.0.0.0:8000"))
    assert result.returncode != 0
    assert "would listen on 0.0.0.0" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("entry_point", ["atlas_site.wsgi", "atlas_site.celery"])
def test_deployment_entry_points_default_to_production_settings(entry_point):
    # gunicorn or a Celery worker started without DJANGO_SETTINGS_MODULE: production, which
    # refuses to start without its secrets, never the local development keys.
    code = f"import os, {entry_point}; print(os.environ['DJANGO_SETTINGS_MODULE'])"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(BASE_DIR)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if entry_point == "atlas_site.wsgi":
        assert result.returncode != 0
        assert "Production settings need these environment variables" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["atlas_site.settings.production"]
