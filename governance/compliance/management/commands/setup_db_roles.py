"""manage.py setup_db_roles: the owner role (migrations, partition DDL) and the app role.

Run as a PostgreSQL superuser after `migrate`, and again after each later `migrate`:

    DATABASE_URL=postgres://postgres@db/atlas manage.py setup_db_roles \\
        --owner atlas_owner --app atlas_app

With `--reporting atlas_reporting`, also a read-only role for BI tools that reads only
the views of the `reporting` schema (ATLAS_DB_REPORTING_PASSWORD).

Passwords come from ATLAS_DB_OWNER_PASSWORD and ATLAS_DB_APP_PASSWORD when set (never
from the command line, which other users of the machine can read). See
governance/compliance/db_roles.py for what each role may do.
"""

import os

from django.core.management.base import BaseCommand, CommandError

from governance.compliance.db_roles import RoleSetupError, setup_db_roles


class Command(BaseCommand):
    help = (
        "Create the owner role (owns the schemas and tables; runs migrations and partition "
        "DDL) and the app role (data only; SELECT and INSERT on the audit log)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--owner", default="atlas_owner", help="default: atlas_owner")
        parser.add_argument("--app", default="atlas_app", help="default: atlas_app")
        parser.add_argument(
            "--reporting",
            default=None,
            help="also a read-only role for BI tools: the reporting schema's views only",
        )
        parser.add_argument("--database", default="default", help="Django database alias")

    def handle(self, *args, owner, app, database, reporting=None, **options):
        try:
            result = setup_db_roles(
                owner=owner,
                app=app,
                owner_password=os.environ.get("ATLAS_DB_OWNER_PASSWORD") or None,
                app_password=os.environ.get("ATLAS_DB_APP_PASSWORD") or None,
                reporting=reporting,
                reporting_password=os.environ.get("ATLAS_DB_REPORTING_PASSWORD") or None,
                using=database,
            )
        except RoleSetupError as exc:
            raise CommandError(str(exc)) from exc
        existed = "all existed" if reporting else "both existed"
        created = ", ".join(result.created) or f"none ({existed})"
        self.stdout.write(
            f"Roles created: {created}. {owner!r} owns {result.owned} schemas and objects; "
            f"{app!r} may read and write data, and only read and insert into the audit log "
            f"({result.audit_relations} tables with its partitions)."
        )
        if reporting:
            self.stdout.write(f"{reporting!r} may read only the views of the reporting schema.")
