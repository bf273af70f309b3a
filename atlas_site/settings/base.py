"""Settings shared by every environment; whatever is deployment-specific comes from it."""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/atlas"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

SECRET_KEY = env("SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "atlas_site.admin_site.AtlasAdminConfig",  # django.contrib.admin with the Atlas site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    # Login throttling. Before the Atlas apps: its signal receivers then run before the
    # audit log's, which reads the failure count axes has just put on the request.
    "axes",
    # The seven schemas: three data layers, four governance areas.
    "explore",
    "chart",
    "navigate",
    "governance.pipeline",
    "governance.quality",
    "governance.compliance",
    "governance.archive",
    # Read-only pages for every role, outside the admin.
    "dashboards",
    # Above every layer: sends the tasks of queued work and decides what runs next.
    "orchestration",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The Content-Security-Policy header on every response (SECURE_CSP below).
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # 400 for a NUL character in the path or query string (atlas_site.request_checks).
    "atlas_site.request_checks.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Ends a session ATLAS_SESSION_MAX_AGE after its login, however active it is.
    "atlas_site.security.AbsoluteSessionTimeoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "governance.compliance.middleware.AuditContextMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "atlas_site.urls"
WSGI_APPLICATION = "atlas_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # {{ csp_nonce }} for the rare <script>/<style> that needs one.
                "django.template.context_processors.csp",
            ],
        },
    },
]

# PostgreSQL 15+, through Atlas's schema-aware subclass of the stock backend.
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", DEFAULT_DATABASE_URL),
        engine="atlas_site.db_backend",
        conn_max_age=int(env("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "var" / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
MEDIA_URL = "media/"

# --- Redis: Celery broker and cache -------------------------------------------------
REDIS_URL = env("REDIS_URL", DEFAULT_REDIS_URL)

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "atlas",
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }
}

# --- Object storage -----------------------------------------------------------------
# S3 (MinIO, AWS, a moto server in tests) when an endpoint or bucket is configured;
# the local filesystem under MEDIA_ROOT otherwise.
S3_BUCKET = env("S3_BUCKET")
S3_ENDPOINT_URL = env("S3_ENDPOINT_URL")
if S3_BUCKET or S3_ENDPOINT_URL:
    default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET or "atlas",
            "endpoint_url": S3_ENDPOINT_URL,
            "access_key": env("S3_ACCESS_KEY_ID"),
            "secret_key": env("S3_SECRET_ACCESS_KEY"),
            "region_name": env("S3_REGION", "us-east-1"),
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
        },
    }
else:
    default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Encryption of restricted values -------------------------------------------------
# ATLAS_ENCRYPTION_KEYS: comma-separated "key_id:base64-32-byte-key" entries; the first
# encrypts, all of them decrypt, so keys can rotate.
ATLAS_ENCRYPTION_KEYS = env("ATLAS_ENCRYPTION_KEYS")
# ATLAS_HASH_KEY: the same form, for the keyed tokens (HMAC-SHA256) that let equal
# encrypted values be compared, and the audit log's fingerprints. A secret of its own,
# never derived from SECRET_KEY; rotate by putting a new key first, then `manage.py retoken`.
ATLAS_HASH_KEY = env("ATLAS_HASH_KEY")
# How many protected values one person may reveal in an hour (each reveal is audited).
ATLAS_REVEAL_LIMIT_PER_HOUR = int(env("ATLAS_REVEAL_LIMIT_PER_HOUR", "30"))
# The regions (ISO 3166 codes, tried in order) a phone number written without its country
# code is checked in by the PII scan (libphonenumber); "+33 ..." or "0033 ..." says its own.
ATLAS_PHONE_REGIONS = [
    code.upper() for code in env_list("ATLAS_PHONE_REGIONS", "US,GB,DE,FR,NL,ES,IT")
]

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# Reliability: a task is acknowledged only once it finished, is re-queued if its
# worker dies, and a worker holds only the task it is running.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# soft limit < hard limit < visibility timeout: a task is stopped (soft, then hard)
# before Redis would hand the unacknowledged message to another worker.
CELERY_TASK_SOFT_TIME_LIMIT = int(env("CELERY_TASK_SOFT_TIME_LIMIT", "3000"))
CELERY_TASK_TIME_LIMIT = int(env("CELERY_TASK_TIME_LIMIT", "3300"))
CELERY_BROKER_VISIBILITY_TIMEOUT = int(env("CELERY_BROKER_VISIBILITY_TIMEOUT", "3600"))
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT}
# kombu's Redis transport with a workaround, so that a worker outlives a Redis restart
# under a running task (kombu 5.7.0 made it exit; see atlas_site/broker.py).
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "atlas_site.broker:Transport"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A lost broker connection is retried for as long as it takes (Celery stops after 100
# attempts by default): a worker outlives a Redis outage and resumes when it is back.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A task whose worker died under it this many times is set aside as a dead letter
# (orchestration.dead_letters) instead of being delivered again forever.
ATLAS_MAX_DELIVERIES = int(env("ATLAS_MAX_DELIVERIES", "3"))
# --- Alerts (orchestration.alerts): e-mail through Django's mail framework -----------------
# (Django 6.1's MAILERS; the EMAIL_* names are only the environment's.)
MAILERS = {
    "default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": env("EMAIL_HOST", "localhost"),
            "port": int(env("EMAIL_PORT", "25")),
            "username": env("EMAIL_HOST_USER", ""),
            "password": env("EMAIL_HOST_PASSWORD", ""),
            "use_tls": env_bool("EMAIL_USE_TLS"),
            "use_ssl": env_bool("EMAIL_USE_SSL"),
            "timeout": int(env("EMAIL_TIMEOUT", "10")),
        },
    }
}
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "atlas@localhost")
# The address alert messages link to (the admin's alert page is appended).
ATLAS_SITE_URL = env("ATLAS_SITE_URL", "http://localhost:8000")
# The hosts webhook channels may POST to (e.g. hooks.slack.com): the worker fetches the URL
# a steward typed, so it reaches only hosts an operator listed, never internal services.
ATLAS_WEBHOOK_HOSTS = [
    host.strip().lower() for host in env("ATLAS_WEBHOOK_HOSTS", "").split(",") if host.strip()
]

# OpenLineage run events of loads and promotions (orchestration.openlineage): off unless
# a URL or a file is set. URL: the receiver's base (Marquez: http://marquez:5000), the
# events POSTed to ATLAS_OPENLINEAGE_ENDPOINT under it, with ATLAS_OPENLINEAGE_API_KEY as a
# bearer token when set; FILE: a path the events are appended to, one JSON line each.
# NAMESPACE names Atlas's jobs and datasets (default atlas://<host of ATLAS_SITE_URL>).
ATLAS_OPENLINEAGE_URL = env("ATLAS_OPENLINEAGE_URL", "")
ATLAS_OPENLINEAGE_ENDPOINT = env("ATLAS_OPENLINEAGE_ENDPOINT", "api/v1/lineage")
ATLAS_OPENLINEAGE_API_KEY = env("ATLAS_OPENLINEAGE_API_KEY", "")
ATLAS_OPENLINEAGE_TIMEOUT = float(env("ATLAS_OPENLINEAGE_TIMEOUT", "5"))
ATLAS_OPENLINEAGE_FILE = env("ATLAS_OPENLINEAGE_FILE", "")
ATLAS_OPENLINEAGE_NAMESPACE = env("ATLAS_OPENLINEAGE_NAMESPACE", "")

# One beat sends these, however many are started (orchestration.beat: a PostgreSQL lock;
# the others stand by). Work done daily or every few hours runs at set times (crontab, in
# CELERY_TIMEZONE), not every N hours from whenever beat last started: daily deploys
# would otherwise keep pushing it back.
CELERY_BEAT_SCHEDULER = "orchestration.beat:SingleBeatScheduler"
ATLAS_RETENTION_HOUR = int(env("ATLAS_RETENTION_HOUR", "2"))
CELERY_BEAT_SCHEDULE = {
    # One tick a minute; each dataset's own cron schedule (in the catalog) decides.
    "pipeline-tick": {"task": "orchestration.tasks.tick", "schedule": 60},
    # Alert rules evaluated; notifications due (new, or retried after backoff) delivered.
    "evaluate-alerts": {"task": "orchestration.tasks.evaluate_alerts", "schedule": 60},
    "ensure-partitions": {
        "task": "governance.archive.tasks.ensure_partitions",
        "schedule": crontab(minute=15, hour="*/6"),
    },
    # Retention: archive (or drop) the partitions the policies have expired, once a day.
    "apply-retention": {
        "task": "governance.archive.tasks.schedule_retention",
        "schedule": crontab(minute=0, hour=ATLAS_RETENTION_HOUR),
    },
}

# --- Recovery: who owns running work, and taking it up when its owner died ----------------
# A load or promotion beats every ATLAS_HEARTBEAT_SECONDS while it holds its lock; when its
# heartbeat stopped ATLAS_OWNER_TIMEOUT_SECONDS ago and its session still holds the lock
# (a stray process kept it open), that session is ended (atlas_site.ownership). Seen so
# twice a heartbeat apart by a watchdog looking every period, that is at most 15 + 5 + 5 s
# after the owner died, within the 30 s recovery goal; a live owner would have to miss
# three beats in a row to be taken for dead (its beats come from a thread of their own:
# 5.6 s apart at most with its process busy in C and Python on a loaded machine). Every
# worker's watchdog looks every ATLAS_WATCHDOG_SECONDS (0: off) for work whose owner is gone
# and sends its task again: once per owner lost, and again after ATLAS_RESEND_AGAIN_SECONDS
# should that message go missing (orchestration.watchdog).
ATLAS_HEARTBEAT_SECONDS = float(env("ATLAS_HEARTBEAT_SECONDS", "5"))
ATLAS_OWNER_TIMEOUT_SECONDS = float(env("ATLAS_OWNER_TIMEOUT_SECONDS", "15"))
ATLAS_WATCHDOG_SECONDS = float(env("ATLAS_WATCHDOG_SECONDS", "5"))
# Workers and beat write a heartbeat this often, and evaluate the alert rules when the
# scheduled evaluation is overdue (orchestration.liveness); 0: off.
ATLAS_LIVENESS_SECONDS = float(env("ATLAS_LIVENESS_SECONDS", "30"))
ATLAS_RESEND_AGAIN_SECONDS = float(env("ATLAS_RESEND_AGAIN_SECONDS", "120"))


def _pg_duration(name: str, default: str) -> str:
    """A PostgreSQL duration ("5s", "10min"; "0": off), checked: a wrong one in a
    connection's options would fail every connection."""
    value = (env(name, default) or "").replace(" ", "")
    number = value.rstrip("abcdefghijklmnopqrstuvwxyz")
    if not number.isdigit() or value[len(number) :] not in ("", "us", "ms", "s", "min", "h", "d"):
        raise ValueError(f"{name} is a PostgreSQL duration such as 5s or 10min, not {value!r}.")
    return value


# While a statement runs, its backend checks this often that its client is still there
# (client_connection_check_interval, PostgreSQL 14+), so a killed worker's session ends with
# its locks even while it waits on a lock. A session idle in a transaction for
# ATLAS_DB_IDLE_IN_TRANSACTION_TIMEOUT ("0": never) is ended, so a forgotten transaction
# cannot hold its locks for ever. Both go in every connection's options, so a deploy with
# one role has them too (setup_db_roles also sets the timeout on the app role, for its
# sessions opened by other clients). A transaction that waits between statements for
# longer on purpose says so (atlas_site.transactions.may_wait_between_statements).
ATLAS_DB_CLIENT_CHECK_INTERVAL = _pg_duration("ATLAS_DB_CLIENT_CHECK_INTERVAL", "5s")
ATLAS_DB_IDLE_IN_TRANSACTION_TIMEOUT = _pg_duration("ATLAS_DB_IDLE_IN_TRANSACTION_TIMEOUT", "10min")
_session_options = [
    f"-c idle_in_transaction_session_timeout={ATLAS_DB_IDLE_IN_TRANSACTION_TIMEOUT}"
]
if int(ATLAS_DB_CLIENT_CHECK_INTERVAL.rstrip("abcdefghijklmnopqrstuvwxyz")):
    _session_options.append(f"-c client_connection_check_interval={ATLAS_DB_CLIENT_CHECK_INTERVAL}")
_options = DATABASES["default"].setdefault("OPTIONS", {})
_options["options"] = " ".join([_options.get("options", ""), *_session_options]).strip()

# --- Atlas ----------------------------------------------------------------------------
# Partitions kept ahead of today by the maintenance job.
ATLAS_PARTITIONS_AHEAD = {
    "months": int(env("ATLAS_PARTITIONS_AHEAD_MONTHS", "3")),
    "years": int(env("ATLAS_PARTITIONS_AHEAD_YEARS", "2")),
    "quarters": int(env("ATLAS_PARTITIONS_AHEAD_QUARTERS", "2")),
}
# Retention and archive (governance.archive). Celery queue of the partition-DDL tasks
# (upkeep, retention, restore): point it at a worker that connects with the owner role
# when the app's role may not alter tables; empty: the default queue.
ATLAS_MAINTENANCE_QUEUE = env("ATLAS_MAINTENANCE_QUEUE")
if ATLAS_MAINTENANCE_QUEUE:  # beat's sends too
    CELERY_TASK_ROUTES = {"governance.archive.tasks.*": {"queue": ATLAS_MAINTENANCE_QUEUE}}
# How long an archive or upkeep waits for a table lock before giving up (nothing dropped).
ATLAS_ARCHIVE_LOCK_TIMEOUT = env("ATLAS_ARCHIVE_LOCK_TIMEOUT", "60s")
# A restored partition is left alone by retention for this many days, then archived again.
ATLAS_ARCHIVE_RESTORED_KEEP_DAYS = int(env("ATLAS_ARCHIVE_RESTORED_KEEP_DAYS", "30"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    # axes logs every login at INFO; the audit log keeps them. Failures stay at WARNING.
    "loggers": {"axes": {"level": "WARNING"}},
}
# ATLAS_LOG_FORMAT=json: one JSON object per line (time, level, logger, message, exception,
# and the run, dataset, batch and task ids when known: atlas_site/log_format.py), for a log
# collector; the worker then leaves the root logger to this configuration.
ATLAS_LOG_FORMAT = (env("ATLAS_LOG_FORMAT", "plain") or "plain").strip().lower()
if ATLAS_LOG_FORMAT not in {"plain", "json"}:
    raise ValueError("ATLAS_LOG_FORMAT is plain or json.")
if ATLAS_LOG_FORMAT == "json":
    LOGGING["formatters"]["json"] = {"()": "atlas_site.log_format.JsonFormatter"}
    LOGGING["filters"] = {"ids": {"()": "atlas_site.log_format.TaskIdsFilter"}}
    LOGGING["handlers"]["console"].update(formatter="json", filters=["ids"])
    CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Ingestion ------------------------------------------------------------------------
# django-ninja serves the API's interactive docs from its own static files (no CDN).
INSTALLED_APPS += ["ninja"]
# Files above this size are refused before anything is stored (default 2 GiB).
ATLAS_MAX_UPLOAD_BYTES = int(env("ATLAS_MAX_UPLOAD_BYTES", str(2 * 1024**3)))
# A line (or JSON array element) longer than this is kept cut at this length, with an
# error: it bounds the memory one record may take.
ATLAS_MAX_RECORD_BYTES = int(env("ATLAS_MAX_RECORD_BYTES", str(16 * 1024**2)))
# Caps of one load (explore.services): a batch past one fails with a reason naming it and
# keeps no raw record. Bytes once decompressed (default 20x ATLAS_MAX_UPLOAD_BYTES: a gzip
# bomb stops there), lines per batch (blank ones too; a JSON array's elements), and seconds
# spent reading the file (below CELERY_TASK_SOFT_TIME_LIMIT, so the load ends with its reason).
ATLAS_MAX_DECOMPRESSED_BYTES = int(
    env("ATLAS_MAX_DECOMPRESSED_BYTES", str(20 * ATLAS_MAX_UPLOAD_BYTES))
)
ATLAS_MAX_LINES_PER_BATCH = int(env("ATLAS_MAX_LINES_PER_BATCH", "50000000"))
ATLAS_MAX_LOAD_SECONDS = float(env("ATLAS_MAX_LOAD_SECONDS", "2400"))
# Rows per COPY statement: bounds the foreign-key check events PostgreSQL queues.
ATLAS_INGEST_STATEMENT_ROWS = int(env("ATLAS_INGEST_STATEMENT_ROWS", "100000"))
# Celery queue of the load tasks; empty: the default queue.
ATLAS_INGEST_QUEUE = env("ATLAS_INGEST_QUEUE")
# API tokens stop working this many days after they are issued, unless the issuer picks
# another time; 0: new tokens never expire. Tokens issued before keep their own expiry.
ATLAS_API_TOKEN_DAYS = int(env("ATLAS_API_TOKEN_DAYS", "90"))
if ATLAS_API_TOKEN_DAYS < 0:
    raise ValueError("ATLAS_API_TOKEN_DAYS is a number of days: 0 or more.")

# --- Promotion ------------------------------------------------------------------------
# Celery queue of the promotion tasks (chart and navigate); empty: the default queue.
ATLAS_PROMOTION_QUEUE = env("ATLAS_PROMOTION_QUEUE")
# Raw records claimed per chunk; each chunk commits in its own transaction. A chunk also
# ends at ATLAS_PROMOTION_CHUNK_BYTES of payload text, so wide records keep memory bounded.
ATLAS_PROMOTION_CHUNK_SIZE = int(env("ATLAS_PROMOTION_CHUNK_SIZE", "5000"))
ATLAS_PROMOTION_CHUNK_BYTES = int(env("ATLAS_PROMOTION_CHUNK_BYTES", str(8 * 1024 * 1024)))
# A promotion shared by several workers (chart.shared_promotion): with N > 0, a promotion to
# chart under a 'warn' or 'quarantine' gate asks N more workers to help (N help tasks on the
# promotion queue), and every chunk is claimed from pipeline.run_chunk by whoever is free,
# on any host. 0: one worker promotes the dataset, judging on its own cores (the fork pool).
ATLAS_PROMOTION_HELPERS = int(env("ATLAS_PROMOTION_HELPERS", "0"))
# A claimed chunk that is not committed within this time is claimed again by another worker
# (its claimant died or hangs); longer than judging and writing one chunk ever takes.
ATLAS_PROMOTION_CHUNK_LEASE_SECONDS = float(env("ATLAS_PROMOTION_CHUNK_LEASE_SECONDS", "120"))

# --- Security: login throttling, sessions, Content Security Policy -----------------------
# django-axes counts failed logins per client address and per account, the admin's login
# form and API tokens apart (atlas_site.security.AtlasAxesHandler), and refuses an address
# or account for AXES_COOLOFF_TIME after AXES_FAILURE_LIMIT failures: a cool-off, never a
# permanent lock. Its tables live in the public schema, beside Django's auth tables.
AUTHENTICATION_BACKENDS = [
    "atlas_site.security.ThrottledAuthenticationBackend",  # first: refuses locked-out clients
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(env("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(env("AXES_COOLOFF_MINUTES", "15")))
# Either one locks: an address (whatever usernames it tried) or an account (from whatever
# addresses). API tokens count per address only (AtlasAxesHandler).
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_HANDLER = "atlas_site.security.AtlasAxesHandler"
# An account's lock is not applied at addresses its user logged in from in this many days
# (axes' access log, below), so its owner is not kept out by someone guessing; 0: nowhere.
ATLAS_LOCKOUT_KNOWN_ADDRESS_DAYS = int(env("ATLAS_LOCKOUT_KNOWN_ADDRESS_DAYS", "30"))
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
# A JSON answer for the API, the admin's own page otherwise.
AXES_LOCKOUT_CALLABLE = "atlas_site.security.lockout_response"
# The address a client is counted under: REMOTE_ADDR, or, only when REMOTE_ADDR is one of
# ATLAS_TRUSTED_PROXY_ADDRESSES (addresses or CIDR networks), the X-Forwarded-For hop the
# outermost of ATLAS_TRUSTED_PROXIES proxies saw (a client cannot forge it).
AXES_CLIENT_IP_CALLABLE = "atlas_site.security.client_ip"
ATLAS_TRUSTED_PROXIES = int(env("ATLAS_TRUSTED_PROXIES", "0"))
ATLAS_TRUSTED_PROXY_ADDRESSES = env_list("ATLAS_TRUSTED_PROXY_ADDRESSES")
# axes' access log (one row per login: user, address) tells which addresses an account's
# user logs in from (ATLAS_LOCKOUT_KNOWN_ADDRESS_DAYS); the audit log keeps the story.
AXES_DISABLE_ACCESS_LOG = False
# No axes pages in the admin: a lock ends by itself; an operator can lift one early with
# `manage.py axes_reset_ip <address>`.
AXES_ENABLE_ADMIN = False

# Sessions rotate their key at login (django.contrib.auth.login) and are flushed at logout.
# Idle timeout: a session unused for SESSION_COOKIE_AGE ends (every request renews it).
SESSION_COOKIE_AGE = int(env("SESSION_COOKIE_AGE", str(30 * 60)))
SESSION_SAVE_EVERY_REQUEST = True
# Absolute timeout: a session ends this long after its login, however active
# (atlas_site.security.AbsoluteSessionTimeoutMiddleware).
ATLAS_SESSION_MAX_AGE = int(env("ATLAS_SESSION_MAX_AGE", str(12 * 60 * 60)))
SESSION_COOKIE_SAMESITE = "Lax"

# Content Security Policy, enforced in every environment so that the test suite (and a
# browser test listening for violations) proves the admin and dashboards work under it:
# scripts and styles only from our own static files, no inline code, no eval.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
