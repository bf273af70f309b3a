# Atlas web, worker and beat image (docker-compose.yml runs all three from it).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=atlas_site.settings.production

WORKDIR /app

# An unprivileged user runs Atlas; it owns only var/ (static files, media, beat schedule).
RUN groupadd --system --gid 10001 atlas \
    && useradd --system --uid 10001 --gid atlas --home-dir /app --shell /usr/sbin/nologin atlas

# Dependencies first, so code changes do not reinstall them. pgserver (an embedded
# PostgreSQL for bin/run and bin/test on a bare workstation) has no place in this image.
COPY requirements.txt /tmp/requirements.txt
RUN grep -v '^pgserver==' /tmp/requirements.txt > /tmp/requirements-image.txt \
    && pip install -r /tmp/requirements-image.txt \
    && rm /tmp/requirements.txt /tmp/requirements-image.txt

# The whole tree, less what .dockerignore leaves out (.git, .venv, .data, var, caches, tests,
# benchmarks, .env): an app added to INSTALLED_APPS is in the image without naming it here.
COPY . .
COPY docker/entrypoint.sh /usr/local/bin/atlas-entrypoint

# Static files are collected into the image, so that every container (web replicas,
# workers, beat) has the same manifest of hashed names, and no deploy step collects them.
# The values below are placeholders that let production settings load; collectstatic
# needs no services (atlas_site/tests/test_image.py loads the settings with them).
RUN chmod 0755 /usr/local/bin/atlas-entrypoint \
    && mkdir -p /app/var/static /app/var/media /app/var/run \
    && SECRET_KEY=build-time-placeholder-not-a-secret-0123456789abcdefghij \
       DATABASE_URL=postgres://build@localhost/build \
       REDIS_URL=redis://localhost:6379/0 \
       ALLOWED_HOSTS=localhost \
       ATLAS_ENCRYPTION_KEYS=build:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
       ATLAS_HASH_KEY=buildhash:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA= \
       ATLAS_ALLOW_LOCAL_STORAGE=true \
       python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R atlas:atlas /app/var

USER atlas
EXPOSE 8000
ENTRYPOINT ["atlas-entrypoint"]
CMD ["web"]
