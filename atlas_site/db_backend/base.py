"""Django's PostgreSQL backend, taught that Atlas tables live in seven schemas.

Only introspection (what `flush` and `inspectdb` see) and flushing differ from the
stock backend; everything else is inherited unchanged.
"""

# Django 6.1: postgresql.introspection imports from postgresql.base, so base first.
from django.db.backends.postgresql import base as postgresql_base

from atlas_site.db_backend.introspection import DatabaseIntrospection
from atlas_site.db_backend.operations import DatabaseOperations


class DatabaseWrapper(postgresql_base.DatabaseWrapper):
    introspection_class = DatabaseIntrospection
    ops_class = DatabaseOperations
