"""Production settings: secrets have no default, and Atlas refuses to start without them.

`DJANGO_SETTINGS_MODULE=atlas_site.settings.production manage.py check --deploy` reports
no warnings with the required variables set (atlas_site/tests/test_settings.py checks it).
Atlas is expected behind a proxy that terminates TLS and sets X-Forwarded-Proto.
"""

import base64
import binascii

from django.core.exceptions import ImproperlyConfigured

from atlas_site.settings.base import *  # noqa: F403
from atlas_site.settings.base import STORAGES, env, env_bool

REQUIRED_SECRETS = (
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "ALLOWED_HOSTS",
    "ATLAS_ENCRYPTION_KEYS",
    "ATLAS_HASH_KEY",
)
_missing = [name for name in REQUIRED_SECRETS if not env(name)]
if _missing:
    raise ImproperlyConfigured(
        "Production settings need these environment variables, which are not set: "
        + ", ".join(_missing)
    )

# The same bar as Django's security.W009, enforced instead of warned about.
SECRET_KEY = env("SECRET_KEY")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfigured(
        "SECRET_KEY must be at least 50 characters long with at least 5 different characters "
        "in production. Generate one with: "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
if SECRET_KEY.startswith("django-insecure-"):
    raise ImproperlyConfigured("SECRET_KEY is a 'django-insecure-' development key.")


def _check_keys(setting: str, value: str) -> None:
    """Comma-separated "key_id:base64-32-byte-key" entries (see settings/base.py)."""
    # governance.compliance.keys parses them at use; this refuses a bad value at start.
    entries = [part.strip() for part in value.split(",") if part.strip()]
    seen = set()
    for entry in entries or [""]:
        key_id, _, encoded = entry.partition(":")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if not key_id or len(raw) != 32 or key_id in seen:
            raise ImproperlyConfigured(
                f"{setting} must be comma-separated 'key_id:base64-of-32-bytes' "
                "entries with distinct ids; generate a key with: python -c 'import base64, os; "
                'print("k1:" + base64.b64encode(os.urandom(32)).decode())\''
            )
        seen.add(key_id)


_check_keys("ATLAS_ENCRYPTION_KEYS", env("ATLAS_ENCRYPTION_KEYS"))
_check_keys("ATLAS_HASH_KEY", env("ATLAS_HASH_KEY"))
_encryption_keys = {e.partition(":")[2].strip() for e in env("ATLAS_ENCRYPTION_KEYS").split(",")}
if {e.partition(":")[2].strip() for e in env("ATLAS_HASH_KEY").split(",")} & _encryption_keys:
    raise ImproperlyConfigured("ATLAS_HASH_KEY must be a key of its own, not an encryption key.")

DEBUG = False

# --- HTTPS (TLS ends at the proxy, which sets X-Forwarded-Proto) ----------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Only for a deployment that serves plain HTTP on purpose (e.g. docker compose on a laptop);
# check --deploy warns when it is off.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Cookies: HTTPS only, and `__Host-` names, which browsers accept only when the cookie is
# Secure, has path=/ and no Domain, so no other host (a sibling subdomain) can set or
# shadow them. JavaScript takes the CSRF token from the page's form, never the cookie.
SESSION_COOKIE_NAME = "__Host-sessionid"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_PATH = "/"
SESSION_COOKIE_DOMAIN = None
CSRF_COOKIE_NAME = "__Host-csrftoken"
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_PATH = "/"
CSRF_COOKIE_DOMAIN = None
# The number of proxies in front of Atlas that append to X-Forwarded-For (the TLS proxy):
# login throttling counts the address the outermost one saw (atlas_site.security).
ATLAS_TRUSTED_PROXIES = int(env("ATLAS_TRUSTED_PROXIES", "1"))
# The Content-Security-Policy (SECURE_CSP) comes from base.py: it is enforced everywhere.

# Hashed static file names, so browsers may cache them for ever (collectstatic runs at
# deploy, in docker/entrypoint.sh).
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
