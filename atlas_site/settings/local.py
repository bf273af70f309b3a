"""Settings for running Atlas on a workstation (`bin/run`)."""

from pathlib import Path

from atlas_site.settings.base import *  # noqa: F403
from atlas_site.settings.base import BASE_DIR, env, env_bool

DEBUG = env_bool("DEBUG", True)
# A stable development key; production refuses to start without its own.
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
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"ATLAS_BROKER={ATLAS_BROKER!r} is not understood; leave it unset (Redis) or "
        "set it to 'filesystem'."
    )
