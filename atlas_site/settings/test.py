"""Settings for the test suite: real PostgreSQL and Redis, a fast password hasher."""

from atlas_site.settings.base import *  # noqa: F403
from atlas_site.settings.base import BASE_DIR, REDIS_URL

SECRET_KEY = "atlas-test-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ"  # noqa: S105
ATLAS_ENCRYPTION_KEYS = "test:dGVzdC1vbmx5LTMyLWJ5dGUta2V5LWZvci1hdGxhcyE="
ATLAS_HASH_KEY = "test:dGVzdC1vbmx5LWhtYWMta2V5LWZvci1hdGxhcy10b2s="
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = BASE_DIR / "var" / "test-media"
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        # The Redis the Celery workers started by tests use too (they are handed
        # REDIS_URL): a worker's cache writes, such as a load's progress, must be
        # the ones the test reads. The prefix keeps them apart from anything else.
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "atlas-test",
    }
}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# The tests' own webhook receivers (orchestration/tests/test_alerts.py).
ATLAS_WEBHOOK_HOSTS = ["127.0.0.1"]
