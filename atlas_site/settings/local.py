"""Settings for running Atlas on a workstation (`bin/run`).

Their defaults (DEBUG on, development keys written in this repository) hold only while no
other machine can reach the development server: bound to any other address (`ATLAS_BIND`,
or `manage.py runserver ADDR:PORT`), they refuse to start without keys of your own, and
DEBUG is off unless ATLAS_ALLOW_NETWORK_DEBUG=true (atlas_site/devserver.py). Deployments
use atlas_site.settings.production, which never reads these defaults (wsgi.py and the
Celery app default to it).
"""

import os
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from atlas_site.devserver import BindError, check, debug_default, listening_host
from atlas_site.settings.base import *  # noqa: F403
from atlas_site.settings.base import BASE_DIR, env, env_bool

# --- Who can reach the development server ------------------------------------------------
ATLAS_BIND = listening_host(sys.argv, os.environ)
try:
    check(ATLAS_BIND, os.environ)
except BindError as error:
    raise ImproperlyConfigured(str(error)) from None

DEBUG = env_bool("DEBUG", debug_default(ATLAS_BIND))
# Stable development keys, for loopback only (check() above refuses them otherwise);
# production refuses to start without its own.
SECRET_KEY = env("SECRET_KEY", "atlas-local-development-key-not-for-production-use-0123456789")
ATLAS_ENCRYPTION_KEYS = env(
    "ATLAS_ENCRYPTION_KEYS", "local:ZGV2LW9ubHktMzItYnl0ZS1rZXktZm9yLWF0bGFzISE="
)
ATLAS_HASH_KEY = env("ATLAS_HASH_KEY", "local:ZGV2LW9ubHktaG1hYy1rZXktZm9yLWF0bGFzLXRva3M=")

# --- No Redis on this machine ------------------------------------------------------------
# bin/run sets ATLAS_BROKER=filesystem when no Redis answers: Celery then passes messages
# through files (kombu's filesystem transport) and Django caches in files. Both live in
# ATLAS_DATA_DIR (default .data/). Good enough for one workstation; never for production.
ATLAS_BROKER = env("ATLAS_BROKER")
if ATLAS_BROKER == "filesystem":
    _data_dir = Path(env("ATLAS_DATA_DIR", str(BASE_DIR / ".data")))
    _broker_dir = _data_dir / "broker"
    # The worker and the web server are producer and consumer of the same queue, so the
    # folder messages are written to is the folder they are read from.
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT = None  # not base.py's Redis transport
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(_data_dir / "cache"),
            "KEY_PREFIX": "atlas",
        }
    }
    for _folder in (
        _broker_dir / "queue",
        _broker_dir / "processed",
        _broker_dir / "control",
        _data_dir / "cache",
    ):
        _folder.mkdir(parents=True, exist_ok=True)
elif ATLAS_BROKER is not None:
    raise ImproperlyConfigured(
        f"ATLAS_BROKER={ATLAS_BROKER!r} is not understood; leave it unset (Redis) or "
        "set it to 'filesystem'."
    )
