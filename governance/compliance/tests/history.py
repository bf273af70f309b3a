"""Back-dated audit entries for tests, written the only way the database allows them.

The trigger `seal_entry` stamps every new entry with the statement's time, so a test
that needs entries of an earlier quarter writes them as the owner role can: with the
trigger disabled (in one transaction), ids drawn from the audit log's sequence, and
then their quarters chained by `audit_chain.rechain`, as migration 0009 chained the
entries that were there before the chain.
"""

from datetime import datetime

from django.db import connection, transaction

from governance.compliance import audit_chain

COLUMNS = ("actor", "action", "object_type", "object_id", "object_repr", "user_agent", "detail")


def write_history(times: list[datetime], **values) -> list[int]:
    """One entry at each of `times` (in that id order); returns their ids.

    `values` override the text columns (e.g. detail="…"); `{n}` in them is replaced by
    the entry's position, from 1.
    """
    defaults = {**dict.fromkeys(COLUMNS, ""), "actor": "history", "action": "update", **values}
    ids = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute('ALTER TABLE "compliance"."audit_log" DISABLE TRIGGER seal_entry')
        for n, at in enumerate(times, start=1):
            row = [str(defaults[name]).replace("{n}", str(n)) for name in COLUMNS]
            cursor.execute(
                'INSERT INTO "compliance"."audit_log" (id, at, '
                + ", ".join(COLUMNS)
                + ') VALUES (nextval(\'"compliance"."audit_log_id_seq"\'), %s, '
                + ", ".join(["%s"] * len(COLUMNS))
                + ") RETURNING id",
                [at, *row],
            )
            ids.append(cursor.fetchone()[0])
        cursor.execute('ALTER TABLE "compliance"."audit_log" ENABLE TRIGGER seal_entry')
        cursor.execute(
            "SELECT DISTINCT c.relname, date_trunc('quarter', a.at AT TIME ZONE 'UTC')::date "
            'FROM "compliance"."audit_log" a JOIN pg_class c ON c.oid = a.tableoid '
            "WHERE a.id = ANY(%s)",
            [ids],
        )
        for partition, quarter in cursor.fetchall():
            audit_chain.rechain(cursor, partition, quarter=quarter)
    return ids
