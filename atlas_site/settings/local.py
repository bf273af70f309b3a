"""Settings for running Atlas on a workstation (`bin/run`)."""

from atlas_site.settings.base import *  # noqa: F403
from atlas_site.settings.base import env, env_bool

DEBUG = env_bool("DEBUG", True)
# A stable development key; production refuses to start without its own.
SECRET_KEY = env("SECRET_KEY", "atlas-local-development-key-not-for-production-use-0123456789")
ATLAS_ENCRYPTION_KEYS = env(
    "ATLAS_ENCRYPTION_KEYS", "local:ZGV2LW9ubHktMzItYnl0ZS1rZXktZm9yLWF0bGFzISE="
)
