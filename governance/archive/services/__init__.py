"""Writes of the archive area: partition upkeep, retention (archive or drop), restore,
key rotation; a module each.

Every piece of partition DDL Atlas runs after its migrations is here or in
`atlas_site.partitions`: creating partitions ahead, moving rows out of DEFAULT,
detaching and dropping an archived partition, recreating one on restore. That is the
maintenance path; with separate database roles it runs on a worker connected as the
owner role (ATLAS_MAINTENANCE_QUEUE), the only role that may detach or drop a
partition of the audit log, whose triggers keep refusing UPDATE, DELETE and TRUNCATE
to everyone (a DROP of a whole partition fires no row or TRUNCATE trigger).

An archive of one partition is one transaction: the partition is locked against
writes (SHARE), its rows are exported with COPY through gzip and envelope encryption
(governance.compliance.envelope) to an object in storage, the object is read back and
checked (sha256 and size of the stored bytes, then decrypted: header and row count),
the manifest is written and the partition detached and dropped, and the audit entry
appended. Any failure, or a worker killed at any point, rolls all of it back: the rows
stay where they were, and only an unreferenced object may be left in storage, which
the next attempt removes.

The manifest's sha256 and byte_size describe the object as stored (encrypted), so an
operator can check an object without the key and a damaged one is caught before it
is decrypted; decryption then authenticates every chunk. Objects archived before
encryption (plain gzip, no key id in their manifest) are restored as they are.

- `ddl`: what every piece of it shares: the per-table lock, the error that refuses it
- `upkeep`: partitions made ahead of today, rows moved out of DEFAULT
- `objects`: archive objects in storage: export, read back, verification
- `retention`: retiring due partitions (archive, verify, drop), the retention run
- `restore`: an archived partition brought back, checked against its manifest
- `rewrap`: an archived object's data key wrapped by the current key

Queuing is the tasks' business (`governance.archive.tasks`): no service queues a task.
"""
