from django.db.backends.postgresql.operations import (
    DatabaseOperations as PostgresOperations,
)

# Tables whose rows the database refuses to delete (append-only by trigger).
# `flush` leaves them alone instead of failing on them.
APPEND_ONLY_TABLES = frozenset({'compliance"."audit_log'})


class DatabaseOperations(PostgresOperations):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        tables = [table for table in tables if table not in APPEND_ONLY_TABLES]
        return super().sql_flush(
            style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
