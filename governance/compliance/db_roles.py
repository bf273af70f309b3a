"""Two PostgreSQL roles: an owner that runs migrations and partition DDL, and the
application's role, which reads and writes data but owns nothing.

`setup_db_roles` (run by `manage.py setup_db_roles` as a superuser, after `migrate`)
makes the owner own the seven Atlas schemas and `public` with everything in them, and
grants the app role:

- SELECT, INSERT, UPDATE, DELETE on every table, and use of every sequence;
- on the audit log (`compliance.audit_log` and each of its partitions) only SELECT and
  INSERT: no UPDATE, DELETE or TRUNCATE (its triggers refuse those to everyone too);
- on the audit log's id sequence only USAGE, which is what its trigger's `nextval`
  needs: no UPDATE, so no `setval` (ids reused), and no SELECT;
- no CREATE on any schema and ownership of nothing, so no ALTER, DROP or other DDL.

Default privileges make tables the owner creates later (a migration, a partition made
ahead by the maintenance job) usable by the app role straight away — except in the
`compliance` schema, which holds the audit log: there a new table gets SELECT and INSERT
only (a new audit log partition must never be changeable), and a new compliance model's
table gets its UPDATE/DELETE when this is run again after its migration.

With `reporting`, a third role for BI readers: LOGIN, read-only by default
(`default_transaction_read_only`), USAGE on the `reporting` schema and SELECT on its views
(default privileges keep views the owner rebuilds readable), and nothing else: no
privilege on any other schema, so it reads chart records and facts only as the views
show them (navigate.reporting; a view runs with its owner's privileges).

Idempotent: run it again after every `migrate`. On an empty database it creates the schemas
for the owner, who may then run the first `migrate`; run it once more after that.
"""

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections, transaction
from psycopg import sql

from atlas_site.schemas import ALL_SCHEMAS, COMPLIANCE, REPORTING

SCHEMAS = (*ALL_SCHEMAS, "public")
# The owner owns the reporting schema and its views too; the app role gets nothing there.
OWNED_SCHEMAS = (*SCHEMAS, REPORTING)
AUDIT_LOG = f"{COMPLIANCE}.audit_log"
TABLE_KINDS = {
    "r": "TABLE",
    "p": "TABLE",
    "f": "FOREIGN TABLE",
    "v": "VIEW",
    "m": "MATERIALIZED VIEW",
}
DATA_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
APPEND_ONLY_PRIVILEGES = "SELECT, INSERT"


class RoleSetupError(Exception):
    pass


@dataclass
class RoleSetup:
    owner: str
    app: str
    created: list[str] = field(default_factory=list)
    owned: int = 0  # schemas, relations, sequences and functions given to the owner
    audit_relations: int = 0
    reporting: str | None = None


def setup_db_roles(
    *,
    owner: str,
    app: str,
    owner_password: str | None = None,
    app_password: str | None = None,
    reporting: str | None = None,
    reporting_password: str | None = None,
    using: str = "default",
) -> RoleSetup:
    """Create (or update) the roles and their privileges, in one transaction."""
    if owner == app:
        raise RoleSetupError("the owner and the app role must be two different roles")
    if reporting is not None and reporting in (owner, app):
        raise RoleSetupError("the reporting role must be a role of its own")
    result = RoleSetup(owner=owner, app=app, reporting=reporting)
    connection = connections[using]
    roles = [(owner, owner_password), (app, app_password)]
    if reporting is not None:
        roles.append((reporting, reporting_password))
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for role, password in roles:
            if _ensure_role(cursor, role, password):
                result.created.append(role)
        _refuse_powerful_app_role(cursor, app)
        if reporting is not None:
            _refuse_powerful_app_role(cursor, reporting)
        # A transaction left open (its client gone while a stray process keeps the socket,
        # a forgotten shell) cannot hold its locks for ever: the app role's sessions end
        # once idle in one for ATLAS_DB_IDLE_IN_TRANSACTION_TIMEOUT ("0": never).

        cursor.execute(
            sql.SQL("ALTER ROLE {} SET idle_in_transaction_session_timeout = {}")
            .format(sql.Identifier(app), sql.Literal(settings.ATLAS_DB_IDLE_IN_TRANSACTION_TIMEOUT))
            .as_string(cursor.connection)
        )
        database = sql.Identifier(connection.settings_dict["NAME"])
        owner_id, app_id = sql.Identifier(owner), sql.Identifier(app)
        _run(cursor, "GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {} TO {}", database, owner_id)
        _run(cursor, "GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}", database, app_id)
        result.owned = _give_to_owner(cursor, owner_id)
        for schema in SCHEMAS:
            _grant_schema(cursor, schema, owner_id, app_id)
        result.audit_relations = _make_audit_log_append_only(cursor, app_id)
        _draw_only_audit_log_ids(cursor, app_id)
        _grant_reporting(cursor, owner_id, app_id)
        if reporting is not None:
            reporting_id = sql.Identifier(reporting)
            _run(cursor, "GRANT CONNECT ON DATABASE {} TO {}", database, reporting_id)
            _reporting_reads_only_views(cursor, owner_id, reporting_id)
    return result


def _run(cursor, statement: str, *identifiers) -> None:
    cursor.execute(sql.SQL(statement).format(*identifiers).as_string(cursor.connection))


def _ensure_role(cursor, role: str, password: str | None) -> bool:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    exists = cursor.fetchone() is not None
    verb = "ALTER" if exists else "CREATE"
    statement = sql.SQL("{} ROLE {} LOGIN").format(sql.SQL(verb), sql.Identifier(role))
    if password:
        statement += sql.SQL(" PASSWORD {}").format(sql.Literal(password))
    cursor.execute(statement.as_string(cursor.connection))
    return not exists


def _refuse_powerful_app_role(cursor, app: str) -> None:
    cursor.execute(
        "SELECT rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb "
        "FROM pg_roles WHERE rolname = %s",
        [app],
    )
    if cursor.fetchone()[0]:
        raise RoleSetupError(
            f"the role {app!r} is a superuser or may create roles or databases, or "
            "bypass row security: give the application a role without those powers"
        )


def _give_to_owner(cursor, owner_id) -> int:
    """The schemas and every object in them (but extensions' own) become the owner's."""
    count = 0
    for schema in OWNED_SCHEMAS:
        # On an empty database the owner can then run the very first `migrate` itself.
        _run(cursor, "CREATE SCHEMA IF NOT EXISTS {}", sql.Identifier(schema))
        _run(cursor, "ALTER SCHEMA {} OWNER TO {}", sql.Identifier(schema), owner_id)
        count += 1
    not_from_extension = (
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = {catalog}::regclass "
        "AND d.objid = {oid} AND d.deptype = 'e')"
    )
    cursor.execute(
        f"""
        SELECT n.nspname, c.relname, c.relkind
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'f', 'v', 'm')
           AND {not_from_extension.format(catalog="'pg_class'", oid="c.oid")}
        """,
        [list(OWNED_SCHEMAS)],
    )
    for schema, name, kind in cursor.fetchall():
        _run(
            cursor,
            f"ALTER {TABLE_KINDS[kind]} {{}}.{{}} OWNER TO {{}}",
            sql.Identifier(schema),
            sql.Identifier(name),
            owner_id,
        )
        count += 1
    # Sequences of identity and serial columns follow their table; the others are moved.
    cursor.execute(
        """
        SELECT n.nspname, c.relname
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%s) AND c.relkind = 'S'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                           AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))
        """,
        [list(SCHEMAS)],
    )
    for schema, name in cursor.fetchall():
        _run(
            cursor,
            "ALTER SEQUENCE {}.{} OWNER TO {}",
            sql.Identifier(schema),
            sql.Identifier(name),
            owner_id,
        )
        count += 1
    cursor.execute(
        f"""
        SELECT p.oid::regprocedure::text
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = ANY(%s)
           AND {not_from_extension.format(catalog="'pg_proc'", oid="p.oid")}
        """,
        [list(SCHEMAS)],
    )
    for (signature,) in cursor.fetchall():
        # regprocedure text is already a quoted, schema-qualified signature.
        cursor.execute(
            sql.SQL("ALTER ROUTINE {} OWNER TO {}")
            .format(sql.SQL(signature), owner_id)
            .as_string(cursor.connection)
        )
        count += 1
    return count


def _grant_schema(cursor, schema: str, owner_id, app_id) -> None:
    schema_id = sql.Identifier(schema)
    _run(cursor, "REVOKE CREATE ON SCHEMA {} FROM PUBLIC", schema_id)
    _run(cursor, "REVOKE CREATE ON SCHEMA {} FROM {}", schema_id, app_id)
    _run(cursor, "GRANT USAGE ON SCHEMA {} TO {}", schema_id, app_id)
    # Data, never structure: no TRUNCATE, REFERENCES or TRIGGER.
    _run(
        cursor,
        "REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {} FROM {}",
        schema_id,
        app_id,
    )
    _run(cursor, f"GRANT {DATA_PRIVILEGES} ON ALL TABLES IN SCHEMA {{}} TO {{}}", schema_id, app_id)
    _run(
        cursor, "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {} TO {}", schema_id, app_id
    )
    future = APPEND_ONLY_PRIVILEGES if schema == COMPLIANCE else DATA_PRIVILEGES
    defaults = "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} "
    _run(cursor, defaults + "REVOKE ALL ON TABLES FROM {}", owner_id, schema_id, app_id)
    _run(cursor, defaults + f"GRANT {future} ON TABLES TO {{}}", owner_id, schema_id, app_id)
    _run(
        cursor,
        defaults + "GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {}",
        owner_id,
        schema_id,
        app_id,
    )


def _make_audit_log_append_only(cursor, app_id) -> int:
    """The audit log and each partition: SELECT and INSERT for the app role, nothing more."""
    cursor.execute(
        "SELECT relid::regclass::text FROM pg_partition_tree(to_regclass(%s))", [AUDIT_LOG]
    )
    relations = [name for (name,) in cursor.fetchall()]
    for name in relations:
        # regclass text is already quoted and schema-qualified.
        relation = sql.SQL(name)
        _run(cursor, "REVOKE ALL ON {} FROM {}", relation, app_id)
        _run(cursor, f"GRANT {APPEND_ONLY_PRIVILEGES} ON {{}} TO {{}}", relation, app_id)
    return len(relations)


def _draw_only_audit_log_ids(cursor, app_id) -> None:
    """The audit log's id sequence: `nextval` (its trigger draws ids as the inserting
    role) and nothing else, so the app role cannot move it back with `setval`."""
    cursor.execute(
        "SELECT pg_get_serial_sequence(%s, 'id') WHERE to_regclass(%s) IS NOT NULL",
        [AUDIT_LOG, AUDIT_LOG],
    )
    found = cursor.fetchone()
    if found is None or found[0] is None:  # an empty database, before its first `migrate`
        return
    (sequence,) = found
    # pg_get_serial_sequence's text is already quoted and schema-qualified.
    _run(cursor, "REVOKE ALL ON SEQUENCE {} FROM {}", sql.SQL(sequence), app_id)
    _run(cursor, "GRANT USAGE ON SEQUENCE {} TO {}", sql.SQL(sequence), app_id)


def _grant_reporting(cursor, owner_id, app_id) -> None:
    """The reporting schema: nobody but the owner creates there; the app role reads
    records from their own tables and needs nothing in it."""
    schema_id = sql.Identifier(REPORTING)
    _run(cursor, "REVOKE ALL ON SCHEMA {} FROM PUBLIC", schema_id)
    _run(cursor, "REVOKE ALL ON SCHEMA {} FROM {}", schema_id, app_id)
    _run(cursor, "REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}", schema_id, app_id)
    _run(
        cursor,
        "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} REVOKE ALL ON TABLES FROM {}",
        owner_id,
        schema_id,
        app_id,
    )


def _reporting_reads_only_views(cursor, owner_id, reporting_id) -> None:
    """USAGE on the reporting schema and SELECT on its views, now and once rebuilt; any
    privilege a former run or a hand gave it elsewhere is taken back."""
    # A BI tool's session cannot write even where some privilege was left behind.
    _run(cursor, "ALTER ROLE {} SET default_transaction_read_only = on", reporting_id)
    for schema in SCHEMAS:
        schema_id = sql.Identifier(schema)
        _run(cursor, "REVOKE ALL ON SCHEMA {} FROM {}", schema_id, reporting_id)
        _run(cursor, "REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}", schema_id, reporting_id)
        _run(cursor, "REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}", schema_id, reporting_id)
    schema_id = sql.Identifier(REPORTING)
    _run(cursor, "GRANT USAGE ON SCHEMA {} TO {}", schema_id, reporting_id)
    _run(cursor, "REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}", schema_id, reporting_id)
    _run(cursor, "GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}", schema_id, reporting_id)
    _run(
        cursor,
        "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}",
        owner_id,
        schema_id,
        reporting_id,
    )
