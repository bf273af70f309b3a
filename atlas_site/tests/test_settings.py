"""Settings: production refuses to start without its secrets and passes `check --deploy`;
the local fallback without Redis; Celery's reliability settings; .env.example is complete.

Settings modules run once per process, so each production case runs in a fresh Python
with a clean environment that holds only what the case sets.
"""

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from atlas_site.celery import app as celery_app

BASE_DIR = Path(__file__).resolve().parent.parent.parent

PRODUCTION_ENV = {
    "SECRET_KEY": "v2Q9-fJ3kL8pZr6TnW1xYb4HcE7mA0sUd5gKq2VwR9tP3yN6jM8LhF1zX4oB7eC0iDs",
    "DATABASE_URL": "postgres://atlas:secret@db.internal:5432/atlas",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "ALLOWED_HOSTS": "atlas.example.com",
    "ATLAS_ENCRYPTION_KEYS": "k1:" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode(),
    "ATLAS_HASH_KEY": "h1:" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode(),
    "S3_BUCKET": "atlas",
}


def run_python(code: str, *, env: dict[str, str], args: tuple[str, ...] = ()):
    clean_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(BASE_DIR),
        "DJANGO_SETTINGS_MODULE": "atlas_site.settings.production",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=BASE_DIR,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SETUP = "import django; django.setup(); print('started')"


def test_production_starts_with_every_secret():
    result = run_python(SETUP, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


@pytest.mark.parametrize("missing", list(PRODUCTION_ENV))
def test_production_refuses_to_start_without_each_secret(missing):
    env = {name: value for name, value in PRODUCTION_ENV.items() if name != missing}
    result = run_python(SETUP, env=env)
    assert result.returncode != 0
    assert "started" not in result.stdout
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr.splitlines()[-1]


def test_production_refuses_local_file_storage_unless_allowed_for_one_host():
    env = {name: value for name, value in PRODUCTION_ENV.items() if name != "S3_BUCKET"}
    result = run_python(SETUP, env=env)
    assert result.returncode != 0 and "started" not in result.stdout
    last = result.stderr.splitlines()[-1]
    assert "ImproperlyConfigured" in last and "ATLAS_ALLOW_LOCAL_STORAGE=true" in last
    shown = "from django.conf import settings; print(settings.STORAGES['default']['BACKEND'])"
    allowed = run_python(SETUP + ";" + shown, env={**env, "ATLAS_ALLOW_LOCAL_STORAGE": "true"})
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.split()[-1] == "django.core.files.storage.FileSystemStorage"
    on_s3 = run_python(SETUP + ";" + shown, env=PRODUCTION_ENV)
    assert on_s3.stdout.split()[-1] == "storages.backends.s3.S3Storage"


def test_production_treats_an_empty_secret_as_missing():
    result = run_python(SETUP, env={**PRODUCTION_ENV, "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    "secret_key",
    [
        "too-short-0123456789",
        "x" * 49,
        "ab" * 40,  # long enough, but only two different characters
        "django-insecure-" + "k3J9vQ2mZ7pX1rT8wL4yN6bH0cF5gD2s",
    ],
)
def test_production_refuses_a_weak_secret_key(secret_key):
    result = run_python(SETUP, env={**PRODUCTION_ENV, "SECRET_KEY": secret_key})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    "keys",
    [
        "no-separator",
        "k1:not base64!",
        "k1:" + base64.b64encode(b"sixteen bytes!!!").decode(),
        "k1:{key},k1:{key}",
        ":{key}",
    ],
)
def test_production_refuses_malformed_encryption_keys(keys):
    key = base64.b64encode(os.urandom(32)).decode()
    result = run_python(
        SETUP, env={**PRODUCTION_ENV, "ATLAS_ENCRYPTION_KEYS": keys.format(key=key)}
    )
    assert result.returncode != 0
    assert "ATLAS_ENCRYPTION_KEYS" in result.stderr.splitlines()[-1]


def test_production_refuses_a_hash_key_that_is_an_encryption_key():
    result = run_python(
        SETUP,
        env={
            **PRODUCTION_ENV,
            "ATLAS_HASH_KEY": "h1:" + PRODUCTION_ENV["ATLAS_ENCRYPTION_KEYS"].partition(":")[2],
        },
    )
    assert result.returncode != 0
    assert "ATLAS_HASH_KEY must be a key of its own" in result.stderr.splitlines()[-1]


def test_production_refuses_a_malformed_hash_key():
    result = run_python(SETUP, env={**PRODUCTION_ENV, "ATLAS_HASH_KEY": "h1:c2hvcnQ="})
    assert result.returncode != 0
    assert "ATLAS_HASH_KEY" in result.stderr.splitlines()[-1]


def test_production_accepts_several_encryption_keys_for_rotation():
    keys = ",".join(f"k{n}:" + base64.b64encode(os.urandom(32)).decode() for n in (2, 1))
    result = run_python(SETUP, env={**PRODUCTION_ENV, "ATLAS_ENCRYPTION_KEYS": keys})
    assert result.returncode == 0, result.stderr


def test_check_deploy_reports_no_warnings_in_production():
    manage = "import sys; from django.core.management import execute_from_command_line as run; "
    manage += "run(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])"
    result = run_python(manage, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stderr + result.stdout


def test_production_settings_values():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS >= 31536000, s.ALLOWED_HOSTS, s.CACHES['default']['LOCATION'], "
        "s.CELERY_BROKER_URL, s.DATABASES['default']['HOST'])"
    )
    result = run_python(code, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False",
        "True",
        "True",
        "True",
        "True",
        "['atlas.example.com']",
        "redis://redis.internal:6379/0",
        "redis://redis.internal:6379/0",
        "db.internal",
    ]


def test_production_trusts_no_proxy_unless_told_which():
    # Clients that reach gunicorn directly must not pick their address with X-Forwarded-For.
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.ATLAS_TRUSTED_PROXIES, s.ATLAS_TRUSTED_PROXY_ADDRESSES)"
    )
    result = run_python(code, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "[]"]

    proxy = {"ATLAS_TRUSTED_PROXIES": "1", "ATLAS_TRUSTED_PROXY_ADDRESSES": "10.0.0.5,fd00::/64"}
    result = run_python(code, env={**PRODUCTION_ENV, **proxy})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "['10.0.0.5',", "'fd00::/64']"]


@pytest.mark.parametrize(
    ("proxies", "addresses", "message"),
    [
        ("1", "", "ATLAS_TRUSTED_PROXIES=1 needs ATLAS_TRUSTED_PROXY_ADDRESSES"),
        ("0", "10.0.0.5", "ATLAS_TRUSTED_PROXIES is 0"),
        ("1", "10.0.0.5,proxy.internal", "'proxy.internal' is not an address"),
        ("-1", "", "0 or more"),
    ],
)
def test_production_refuses_a_half_configured_proxy(proxies, addresses, message):
    env = {
        **PRODUCTION_ENV,
        "ATLAS_TRUSTED_PROXIES": proxies,
        "ATLAS_TRUSTED_PROXY_ADDRESSES": addresses,
    }
    result = run_python(SETUP, env=env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr.splitlines()[-1]


def test_local_settings_fall_back_to_files_without_redis(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "from atlas_site.celery import app; "
        "print(app.conf.broker_url); print(app.conf.broker_transport_options); "
        "print(s.CACHES['default']['BACKEND'])"
    )
    env = {
        "DJANGO_SETTINGS_MODULE": "atlas_site.settings.local",
        "ATLAS_BROKER": "filesystem",
        "ATLAS_DATA_DIR": str(tmp_path),
    }
    result = run_python(code, env=env)
    assert result.returncode == 0, result.stderr
    broker_url, options, cache_backend = result.stdout.splitlines()
    assert broker_url == "filesystem://"
    assert f"'data_folder_in': '{tmp_path}/broker/queue'" in options
    assert f"'data_folder_out': '{tmp_path}/broker/queue'" in options
    assert f"'processed_folder': '{tmp_path}/broker/processed'" in options
    assert cache_backend == "django.core.cache.backends.filebased.FileBasedCache"
    assert (tmp_path / "broker" / "queue").is_dir()
    assert (tmp_path / "cache").is_dir()


def test_local_settings_refuse_an_unknown_broker_fallback():
    env = {"DJANGO_SETTINGS_MODULE": "atlas_site.settings.local", "ATLAS_BROKER": "rabbit"}
    result = run_python(SETUP, env=env)
    assert result.returncode != 0
    assert "ATLAS_BROKER" in result.stderr.splitlines()[-1]


# --- Celery reliability (the app as the test settings configure it) -------------------------


def test_celery_acknowledges_late_and_requeues_on_worker_loss():
    assert celery_app.conf.task_acks_late is True
    assert celery_app.conf.task_reject_on_worker_lost is True
    assert celery_app.conf.worker_prefetch_multiplier == 1


def test_celery_time_limits_end_a_task_before_redis_redelivers_it():
    soft = celery_app.conf.task_soft_time_limit
    hard = celery_app.conf.task_time_limit
    visibility = celery_app.conf.broker_transport_options["visibility_timeout"]
    assert 0 < soft < hard < visibility
    assert visibility == settings.CELERY_BROKER_VISIBILITY_TIMEOUT


def test_celery_uses_json_only_and_redis_broker():
    assert celery_app.conf.task_serializer == "json"
    assert list(celery_app.conf.accept_content) == ["json"]
    assert celery_app.conf.broker_url.startswith("redis://")


# --- .env.example lists every variable the settings read -------------------------------------


def test_env_example_lists_every_setting_variable():
    read = set()
    for module in sorted((BASE_DIR / "atlas_site" / "settings").glob("*.py")):
        if module.name == "test.py":
            continue
        read |= set(
            re.findall(r"\benv(?:_bool|_list)?\(\s*\"([A-Z][A-Z0-9_]*)\"", module.read_text())
        )
    listed = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (BASE_DIR / ".env.example").read_text(), flags=re.M)
    )
    assert read, "no env(...) calls found: the pattern is out of date"
    assert sorted(read - listed) == []
