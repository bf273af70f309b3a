"""The benchmarks' own database: made on the server of DATABASE_URL when missing.

Each bench script calls `prepare()` before `django.setup()`; the script then runs
`migrate` itself, so a fresh machine needs nothing done by hand.
"""

import os
from urllib.parse import unquote, urlsplit

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/atlas_bench"


def prepare() -> str:
    """Point DATABASE_URL at the bench database (default atlas_bench) and create it if missing."""
    import psycopg
    from psycopg import sql

    url = os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    name = unquote(urlsplit(url).path.lstrip("/"))
    if not name:
        raise SystemExit(f"DATABASE_URL names no database: {url}")
    maintenance = urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created the database {name}", flush=True)
    return url
