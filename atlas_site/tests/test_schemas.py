"""Every Atlas table lives in its own schema; the backend's introspection sees them."""

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connection

from atlas_site.schemas import ALL_SCHEMAS

ATLAS_APPS = {"explore", "chart", "navigate", "pipeline", "quality", "compliance", "archive"}
APP_SCHEMA = {
    "explore": "explore",
    "chart": "chart",
    "navigate": "navigate",
    "pipeline": "pipeline",
    "quality": "quality",
    "compliance": "compliance",
    "archive": "archive",
}


def atlas_models():
    # A proxy (e.g. archive.ArchiveRun over pipeline runs) has no table of its own.
    return [
        model
        for model in apps.get_models()
        if model._meta.app_label in ATLAS_APPS and not model._meta.proxy
    ]


@pytest.mark.django_db
def test_the_seven_schemas_exist():
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace")
        schemas = {row[0] for row in cursor.fetchall()}
    assert set(ALL_SCHEMAS) <= schemas


@pytest.mark.django_db
@pytest.mark.parametrize("model", atlas_models(), ids=lambda m: m._meta.label)
def test_each_model_table_is_in_its_apps_schema(model):
    schema, table = model._meta.db_table.split('"."')
    assert schema == APP_SCHEMA[model._meta.app_label]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
            [schema, table],
        )
        assert cursor.fetchone()[0] == 1


@pytest.mark.django_db
def test_no_atlas_table_lands_in_public():
    atlas_tables = {model._meta.db_table.split('"."')[1] for model in atlas_models()}
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        public = {row[0] for row in cursor.fetchall()}
    assert not public & atlas_tables
    # Django's own tables and django-axes' (login throttling) stay in public.
    assert all(name.startswith(("auth_", "django_", "axes_")) for name in public)


@pytest.mark.django_db
def test_introspection_lists_tables_under_their_qualified_names():
    names = set(connection.introspection.table_names())
    for model in atlas_models():
        assert model._meta.db_table in names
    # What flush would truncate: every Atlas table but the append-only audit log.
    flushed = connection.introspection.django_table_names(only_existing=True)
    assert 'explore"."raw_record' in flushed
    sql = connection.ops.sql_flush(no_style(), flushed)
    assert '"compliance"."audit_log"' not in " ".join(sql)
    assert '"explore"."raw_record"' in " ".join(sql)


@pytest.mark.django_db
def test_inspectdb_describes_a_schema_qualified_table(capsys):
    call_command("inspectdb", 'pipeline"."dataset')
    output = capsys.readouterr().out
    assert "class PipelineDataset(models.Model)" in output
    assert "slug = models.CharField(unique=True, max_length=80)" in output
    assert "db_table = 'pipeline\".\"dataset'" in output
