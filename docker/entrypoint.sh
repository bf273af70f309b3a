#!/bin/sh
# Starts one Atlas process in its container: web (after migrate, collectstatic and
# ensure_partitions), worker or beat. Anything else is run as given, e.g.
#   docker compose run --rm web manage.py createsuperuser
set -eu

cd /app

case "${1:-web}" in
web)
    echo "atlas: applying migrations"
    python manage.py migrate --noinput
    echo "atlas: collecting static files"
    python manage.py collectstatic --noinput --verbosity 0
    echo "atlas: making sure partitions exist ahead of today"
    python manage.py ensure_partitions
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
