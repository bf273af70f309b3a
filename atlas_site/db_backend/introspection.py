from contextlib import contextmanager

from django.db.backends.postgresql import base as _base  # noqa: F401  (import order, see base.py)
from django.db.backends.postgresql.introspection import (
    DatabaseIntrospection as PostgresIntrospection,
)
from django.db.backends.postgresql.introspection import TableInfo
from django.db.backends.utils import split_identifier

from atlas_site.schemas import ALL_SCHEMAS


class DatabaseIntrospection(PostgresIntrospection):
    """Lists tables of the Atlas schemas under their qualified names.

    A model's `db_table` is `schema"."table`; `flush` and `inspectdb` compare
    introspected names with it, so tables outside the search path are reported
    in that same form.
    """

    def get_table_list(self, cursor):
        tables = super().get_table_list(cursor)
        cursor.execute(
            """
            SELECT n.nspname, c.relname,
                   CASE WHEN c.relispartition THEN 'p'
                        WHEN c.relkind IN ('m', 'v') THEN 'v'
                        ELSE 't' END,
                   obj_description(c.oid, 'pg_class')
              FROM pg_catalog.pg_class c
              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('f', 'm', 'p', 'r', 'v')
               AND n.nspname = ANY(%s)
            """,
            [list(ALL_SCHEMAS)],
        )
        tables.extend(
            TableInfo(f'{schema}"."{name}', kind, comment)
            for schema, name, kind, comment in cursor.fetchall()
        )
        return tables

    @contextmanager
    def _search_path_of(self, cursor, table_name):
        """Run a stock introspection query on a qualified name by putting its schema first."""
        schema, name = split_identifier(table_name)
        if not schema:
            yield name
            return
        cursor.execute("SHOW search_path")
        previous = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('search_path', %s, false)", [f'"{schema}", {previous}'])
        try:
            yield name
        finally:
            cursor.execute("SELECT set_config('search_path', %s, false)", [previous])

    def get_table_description(self, cursor, table_name):
        with self._search_path_of(cursor, table_name) as name:
            return super().get_table_description(cursor, name)

    def get_sequences(self, cursor, table_name, table_fields=()):
        with self._search_path_of(cursor, table_name) as name:
            sequences = super().get_sequences(cursor, name, table_fields)
        return [{**sequence, "table": table_name} for sequence in sequences]

    def get_relations(self, cursor, table_name):
        with self._search_path_of(cursor, table_name) as name:
            return super().get_relations(cursor, name)

    def get_constraints(self, cursor, table_name):
        with self._search_path_of(cursor, table_name) as name:
            return super().get_constraints(cursor, name)
