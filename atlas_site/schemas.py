"""The seven PostgreSQL schemas Atlas keeps its tables in: the one place they are named."""

EXPLORE = "explore"
CHART = "chart"
NAVIGATE = "navigate"
PIPELINE = "pipeline"
QUALITY = "quality"
COMPLIANCE = "compliance"
ARCHIVE = "archive"

ALL_SCHEMAS = (EXPLORE, CHART, NAVIGATE, PIPELINE, QUALITY, COMPLIANCE, ARCHIVE)

# The three data layers, in the order records move through them.
DATA_LAYERS = (EXPLORE, CHART, NAVIGATE)

# The read surface for BI: views only, rebuilt from the contracts and metric definitions
# (navigate.reporting), never a model's table. Kept out of ALL_SCHEMAS, whose tables the
# backend's introspection lists (flush) and the app role gets data privileges on.
REPORTING = "reporting"


def qualified(schema: str, table: str) -> str:
    """A `db_table` value that Django quotes as "schema"."table"."""
    if schema not in ALL_SCHEMAS:
        raise ValueError(f"unknown Atlas schema {schema!r}")
    return f'{schema}"."{table}'


def sql_name(db_table: str) -> str:
    """The quoted SQL name of a (possibly schema-qualified) `db_table`."""
    return '"' + db_table + '"'


def sql_table(model) -> str:
    """The quoted SQL name of a model's table, for raw SQL: '"explore"."raw_record"'."""
    return sql_name(model._meta.db_table)
