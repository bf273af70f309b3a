#!/bin/sh
# Starts one Atlas process in its container: migrate (the one-shot deploy step: migrations
# and partitions ahead of today; compose's web, worker and beat wait for it to succeed),
# web, worker or beat. Static files are collected when the image is built. Anything else is
# run as given, e.g.
#   docker compose run --rm web manage.py createsuperuser
set -eu

cd /app

case "${1:-web}" in
migrate)
    echo "atlas: applying migrations"
    python manage.py migrate --noinput
    echo "atlas: making sure partitions exist ahead of today"
    exec python manage.py ensure_partitions
    ;;
web)
    echo "atlas: starting gunicorn on 0.0.0.0:8000"
    exec gunicorn atlas_site.wsgi:application \
        --bind 0.0.0.0:8000 \
        --workers "${GUNICORN_WORKERS:-3}" \
        --timeout "${GUNICORN_TIMEOUT:-60}" \
        --forwarded-allow-ips "${GUNICORN_FORWARDED_ALLOW_IPS:-*}" \
        --access-logfile - \
        --error-logfile -
    ;;
worker)
    exec celery -A atlas_site worker -l "${CELERY_LOG_LEVEL:-info}" \
        --concurrency "${CELERY_CONCURRENCY:-2}"
    ;;
beat)
    exec celery -A atlas_site beat -l "${CELERY_LOG_LEVEL:-info}" \
        --schedule /app/var/run/celerybeat-schedule
    ;;
manage.py)
    shift
    exec python manage.py "$@"
    ;;
*)
    exec "$@"
    ;;
esac
