"""Production settings: secrets have no default, and Atlas refuses to start without them.

`DJANGO_SETTINGS_MODULE=atlas_site.settings.production manage.py check --deploy` reports
no warnings with the required variables set (atlas_site/tests/test_settings.py checks it).
Atlas is expected behind a proxy that terminates TLS and sets X-Forwarded-Proto.
"""

import base64
import binascii
import ipaddress

from django.core.exceptions import ImproperlyConfigured

from atlas_site.settings.base import *  # noqa: F403
from atlas_site.settings.base import S3_BUCKET, S3_ENDPOINT_URL, STORAGES, env, env_bool, env_list

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


def _check_proxies(count: int, addresses: list[str]) -> None:
    """Both or neither: a count without addresses, or addresses without a count, would
    count every client under the proxy's one address (one guesser locks everyone out)."""
    if count < 0:
        raise ImproperlyConfigured("ATLAS_TRUSTED_PROXIES is a number of proxies: 0 or more.")
    for address in addresses:
        try:
            ipaddress.ip_network(address, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"ATLAS_TRUSTED_PROXY_ADDRESSES: {address!r} is not an address or a CIDR "
                "network (comma-separated, e.g. 10.0.0.5,172.18.0.0/16)."
            ) from None
    if count and not addresses:
        raise ImproperlyConfigured(
            f"ATLAS_TRUSTED_PROXIES={count} needs ATLAS_TRUSTED_PROXY_ADDRESSES: the addresses "
            "your proxies connect to Atlas from (X-Forwarded-For is trusted only from them)."
        )
    if addresses and not count:
        raise ImproperlyConfigured(
            "ATLAS_TRUSTED_PROXY_ADDRESSES is set but ATLAS_TRUSTED_PROXIES is 0: set how many "
            "proxies append to X-Forwarded-For (1 for one TLS proxy), or unset the addresses."
        )


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
# Who a client is (login throttling, the audit log; atlas_site.security.client_ip): the
# connecting peer, unless it is one of ATLAS_TRUSTED_PROXY_ADDRESSES; then the address the
# outermost of ATLAS_TRUSTED_PROXIES proxies saw. None are trusted unless configured: a
# client that reaches gunicorn directly must not name its own address in X-Forwarded-For.
ATLAS_TRUSTED_PROXIES = int(env("ATLAS_TRUSTED_PROXIES", "0"))
ATLAS_TRUSTED_PROXY_ADDRESSES = env_list("ATLAS_TRUSTED_PROXY_ADDRESSES")
_check_proxies(ATLAS_TRUSTED_PROXIES, ATLAS_TRUSTED_PROXY_ADDRESSES)
# The Content-Security-Policy (SECURE_CSP) comes from base.py: it is enforced everywhere.

# Landing files and archive objects in object storage: a worker on another host cannot
# read a file another host wrote to its own disk. The local folder only where an operator
# says Atlas runs on one host (web and workers sharing MEDIA_ROOT).
ATLAS_ALLOW_LOCAL_STORAGE = env_bool("ATLAS_ALLOW_LOCAL_STORAGE", False)
if not (S3_BUCKET or S3_ENDPOINT_URL) and not ATLAS_ALLOW_LOCAL_STORAGE:
    raise ImproperlyConfigured(
        "Production stores landing files and archives in S3-compatible object storage: set "
        "S3_BUCKET (and S3_ENDPOINT_URL, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY as needed), "
        "or ATLAS_ALLOW_LOCAL_STORAGE=true when web and every worker run on one host and "
        "share its disk."
    )

# Hashed static file names, so browsers may cache them for ever (collectstatic runs at
# deploy, in docker/entrypoint.sh).
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
