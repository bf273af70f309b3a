"""One `migrate` deploys everything, a second changes nothing, and models match migrations."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection


def _schema_fingerprint() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT n.nspname, c.relname, c.relkind
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN ('explore','chart','navigate','pipeline','quality',
                                 'compliance','archive','public')
             ORDER BY 1, 2
            """
        )
        return cursor.fetchall()


@pytest.mark.django_db(transaction=True)
def test_second_migrate_changes_nothing():
    before = _schema_fingerprint()
    out = StringIO()
    call_command("migrate", interactive=False, stdout=out)
    assert "No migrations to apply." in out.getvalue()
    assert _schema_fingerprint() == before


@pytest.mark.django_db
def test_models_and_migrations_agree():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_schemas_migration_is_idempotent_sql():
    # The first migration may meet schemas that already exist (an operator made them).
    from importlib import import_module

    create_sql = import_module("governance.pipeline.migrations.0001_create_schemas").create_sql
    with connection.cursor() as cursor:
        cursor.execute(create_sql)
        cursor.execute(create_sql)
