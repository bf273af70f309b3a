"""Finds (or starts) the PostgreSQL and Redis that bin/run and bin/test use.

Run with the project's virtualenv Python (it needs psycopg, redis and pgserver):

    _services.py database [--create] [--embedded-dir DIR]
        Decides the database and prints `DATABASE_URL=...`, `ATLAS_EMBEDDED_PG=0|1`
        and, for an embedded server, `ATLAS_EMBEDDED_PG_STARTED=0|1`.
        DATABASE_URL when set (it must answer); otherwise ATLAS_DEFAULT_DATABASE_URL
        (default postgres://postgres@127.0.0.1:5432/atlas) when a server answers there;
        otherwise an embedded PostgreSQL (the `pgserver` package) in DIR.
        --create makes the named database when the server answers but it is missing.
    _services.py redis
        Prints `REDIS_URL=...` for REDIS_URL (it must answer PING) or, when unset,
        ATLAS_DEFAULT_REDIS_URL (default redis://127.0.0.1:6379/0); exits 3 when
        nothing answers there.
    _services.py stop-embedded DIR
        Stops the embedded PostgreSQL whose data folder is DIR (fast shutdown).

Messages for people go to stderr; stdout carries only KEY=value lines for the shell.
Exit status: 0 ok, 2 an explicitly configured service does not answer, 3 not found.
"""

import argparse
import importlib.util
import os
import platform
import signal
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/atlas"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CONNECT_TIMEOUT = 3


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def emit(**values: str) -> None:
    for key, value in values.items():
        print(f"{key}={value}", flush=True)


def _describe(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def _connect(url: str, dbname: str | None = None):
    import dj_database_url
    import psycopg

    config = dj_database_url.parse(url)
    params = {
        "dbname": dbname or config["NAME"] or "postgres",
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "connect_timeout": CONNECT_TIMEOUT,
        "autocommit": True,
    }
    params.update(config.get("OPTIONS", {}))
    return psycopg.connect(**{key: value for key, value in params.items() if value is not None})


def probe_database(url: str, *, create: bool) -> tuple[bool, str]:
    """(server answers, what happened). Creates the database when asked and missing."""
    import dj_database_url
    import psycopg
    from psycopg import sql

    name = dj_database_url.parse(url)["NAME"]
    try:
        with _connect(url):
            return True, f"database {name!r} answers"
    except psycopg.OperationalError as exc:
        first_error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    # The server may answer while the database does not exist yet: ask the maintenance db.
    try:
        with _connect(url, dbname="postgres") as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if exists:
                return True, f"database {name!r} exists"
            if not create:
                return True, f"server answers; database {name!r} not created yet"
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True, f"created database {name!r}"
    except psycopg.OperationalError:
        return False, first_error


def embedded_running(data_dir: Path) -> bool:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().splitlines()[0]), 0)
    except (ProcessLookupError, ValueError, IndexError):
        return False
    except PermissionError:  # alive, owned by another user (pgserver when we are not root)
        return True
    return True


def start_embedded(data_dir: Path, dbname: str) -> str:
    """Start (or reuse) the pgserver PostgreSQL in data_dir; return its DATABASE_URL."""
    from psycopg import sql

    warnings.filterwarnings("ignore", module="platformdirs")  # XDG_RUNTIME_DIR unset is fine
    import pgserver  # absent where it has no wheel: cmd_database checks first

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if os.name == "posix" and os.geteuid() == 0:
        say(
            "running as root: PostgreSQL refuses to, so pgserver runs it as the system "
            "user 'pgserver' (created if missing) and opens read/traverse permission on "
            f"the folders above {data_dir}"
        )
    # cleanup_mode=None: the server outlives this helper; bin/run and bin/test stop it.
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    info = server.get_postmaster_info()
    if info.socket_dir is None:  # pragma: no cover - pgserver uses a socket on POSIX
        raise RuntimeError("the embedded PostgreSQL gave no socket directory")
    host = quote(str(info.socket_dir), safe="")
    url = f"postgres://postgres@{host}/{dbname}"
    with _connect(url, dbname="postgres") as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            say(f"created database {dbname!r} in the embedded PostgreSQL")
    return url


def cmd_database(args: argparse.Namespace) -> int:
    explicit = os.environ.get("DATABASE_URL", "").strip()
    if explicit:
        answers, detail = probe_database(explicit, create=args.create)
        if not answers:
            say(f"DATABASE_URL is set to {_describe(explicit)} but nothing answers there:")
            say(f"    {detail}")
            say("Start that server, fix DATABASE_URL, or unset it (default or embedded server).")
            return 2
        say(f"PostgreSQL: using DATABASE_URL {_describe(explicit)} ({detail})")
        emit(DATABASE_URL=explicit, ATLAS_EMBEDDED_PG="0")
        return 0

    default = os.environ.get("ATLAS_DEFAULT_DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL
    answers, detail = probe_database(default, create=args.create)
    if answers:
        say(f"PostgreSQL: using {_describe(default)} ({detail})")
        emit(DATABASE_URL=default, ATLAS_EMBEDDED_PG="0")
        return 0

    import dj_database_url

    dbname = dj_database_url.parse(default)["NAME"] or "atlas"
    data_dir = Path(args.embedded_dir).resolve()
    say(f"PostgreSQL: nothing answers at {_describe(default)} ({detail})")
    if importlib.util.find_spec("pgserver") is None:
        say(
            "PostgreSQL: and the embedded server is not available: the pgserver package has "
            f"no wheel for Python {sys.version_info.major}.{sys.version_info.minor} on "
            f"{platform.machine()} (it has for Python 3.10-3.12 on x86_64 Linux, macOS, Windows)."
        )
        say(
            "Start PostgreSQL 15+ there, set DATABASE_URL, or rebuild .venv with Python 3.12 "
            "(rm -rf .venv; ATLAS_PYTHON=/path/to/python3.12)."
        )
        return 2
    already = embedded_running(data_dir)
    if already:
        say(f"PostgreSQL: reusing the EMBEDDED PostgreSQL (pgserver) already running in {data_dir}")
    else:
        say(f"PostgreSQL: starting an EMBEDDED PostgreSQL (pgserver) with its data in {data_dir}")
    started = time.monotonic()
    url = start_embedded(data_dir, dbname)
    say(
        f"PostgreSQL: embedded server ready in {time.monotonic() - started:.1f}s at "
        f"{_describe(url)} (log: {data_dir / 'log'})"
    )
    # Whoever started the embedded server stops it; a reused one is left running.
    emit(DATABASE_URL=url, ATLAS_EMBEDDED_PG="1", ATLAS_EMBEDDED_PG_STARTED="0" if already else "1")
    return 0


def ping_redis(url: str) -> tuple[bool, str]:
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT
        )
        client.ping()
        return True, "answers PING"
    except (redis.RedisError, OSError, ValueError) as exc:
        return False, str(exc) or repr(exc)


def cmd_redis(args: argparse.Namespace) -> int:
    explicit = os.environ.get("REDIS_URL", "").strip()
    url = explicit or os.environ.get("ATLAS_DEFAULT_REDIS_URL", "").strip() or DEFAULT_REDIS_URL
    answers, detail = ping_redis(url)
    if answers:
        say(f"Redis: using {'REDIS_URL ' if explicit else ''}{_describe(url)} ({detail})")
        emit(REDIS_URL=url)
        return 0
    if explicit:
        say(f"REDIS_URL is set to {_describe(url)} but it does not answer PING: {detail}")
        return 2
    say(f"Redis: nothing answers at {_describe(url)} ({detail})")
    return 3


def cmd_stop_embedded(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        say(f"PostgreSQL: no embedded server running in {data_dir}")
        return 0
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, signal.SIGINT)  # "fast" shutdown: roll back sessions, checkpoint, exit
    except ProcessLookupError:
        return 0
    for _ in range(300):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            say(f"PostgreSQL: embedded server in {data_dir} stopped")
            return 0
        time.sleep(0.1)
    say(f"PostgreSQL: embedded server (pid {pid}) still running after 30s; leaving it")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    database = commands.add_parser("database")
    database.add_argument("--create", action="store_true")
    database.add_argument("--embedded-dir", default=".data/postgres")
    database.set_defaults(handler=cmd_database)
    commands.add_parser("redis").set_defaults(handler=cmd_redis)
    stop = commands.add_parser("stop-embedded")
    stop.add_argument("data_dir")
    stop.set_defaults(handler=cmd_stop_embedded)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
