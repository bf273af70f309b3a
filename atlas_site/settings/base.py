"""Settings shared by every environment; whatever is deployment-specific comes from it."""

import os
from pathlib import Path

import dj_database_url

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
    # The seven schemas: three data layers, four governance areas.
    "explore",
    "chart",
    "navigate",
    "governance.pipeline",
    "governance.quality",
    "governance.compliance",
    "governance.archive",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "governance.compliance.middleware.AuditContextMiddleware",
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
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    # One tick a minute; each dataset's own cron schedule (in the catalog) decides.
    "pipeline-tick": {"task": "governance.pipeline.tasks.tick", "schedule": 60},
    "ensure-partitions": {
        "task": "governance.archive.tasks.ensure_partitions",
        "schedule": 6 * 60 * 60,
    },
}

# --- Atlas ----------------------------------------------------------------------------
# Partitions kept ahead of today by the maintenance job.
ATLAS_PARTITIONS_AHEAD = {
    "months": int(env("ATLAS_PARTITIONS_AHEAD_MONTHS", "3")),
    "years": int(env("ATLAS_PARTITIONS_AHEAD_YEARS", "2")),
    "quarters": int(env("ATLAS_PARTITIONS_AHEAD_QUARTERS", "2")),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
}

# --- Ingestion ------------------------------------------------------------------------
# django-ninja serves the API's interactive docs from its own static files (no CDN).
INSTALLED_APPS += ["ninja"]
# Files above this size are refused before anything is stored (default 2 GiB).
ATLAS_MAX_UPLOAD_BYTES = int(env("ATLAS_MAX_UPLOAD_BYTES", str(2 * 1024**3)))
# A line (or JSON array element) longer than this is kept cut at this length, with an
# error: it bounds the memory one record may take.
ATLAS_MAX_RECORD_BYTES = int(env("ATLAS_MAX_RECORD_BYTES", str(16 * 1024**2)))
# Rows per COPY statement: bounds the foreign-key check events PostgreSQL queues.
ATLAS_INGEST_STATEMENT_ROWS = int(env("ATLAS_INGEST_STATEMENT_ROWS", "100000"))
# Celery queue of the load tasks; empty: the default queue.
ATLAS_INGEST_QUEUE = env("ATLAS_INGEST_QUEUE")

# --- Promotion ------------------------------------------------------------------------
# Celery queue of the promotion tasks (chart and navigate); empty: the default queue.
ATLAS_PROMOTION_QUEUE = env("ATLAS_PROMOTION_QUEUE")
# Raw records claimed per chunk; each chunk commits in its own transaction.
ATLAS_PROMOTION_CHUNK_SIZE = int(env("ATLAS_PROMOTION_CHUNK_SIZE", "5000"))
