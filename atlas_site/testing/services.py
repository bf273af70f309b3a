"""Private Redis and PostgreSQL servers for fault tests: started, stopped and restarted at will.

The suite's shared servers must never be stopped (other test runs use them), so the
outage tests start their own on free ports, in temporary folders:

    with private_redis(tmp_path / "redis") as redis:
        redis.url(db=0)  # redis://127.0.0.1:<port>/0
        redis.stop(); ...; redis.start()  # the same port, its data kept (append-only file)

    with private_postgres() as pg:
        pg.copy_database(from_url=..., name="atlas")  # schema and rows of a database
        pg.url("atlas"); pg.stop(); ...; pg.start()

PostgreSQL refuses to run as root; as root the cluster runs as the system user
`postgres` (the Debian packages' binaries in /usr/lib/postgresql/<version>/bin).
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT = 30


class ServiceError(RuntimeError):
    """A private server did not start or stop; the message holds its log."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


# --- Redis -------------------------------------------------------------------------------


class RedisServer:
    """A redis-server on its own port whose data survives a stop (append-only, fsync always).

    Like docker-compose's Redis (`--appendonly yes`): the broker's queues outlive a restart.
    `persistent=False`: nothing is written to disk, so a restart starts empty (a Redis
    deployed without persistence, which loses the messages it held).
    """

    def __init__(self, directory: Path, port: int | None = None, *, persistent: bool = True):
        self.directory = directory
        self.port = port or free_port()
        self.persistent = persistent
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "redis.log"

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server is not installed")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.directory), "--save", ""]
        if self.persistent:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            command += ["--appendonly", "no"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - a fixed binary, our arguments
                command, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait(lambda: port_open(self.port), "start")

    def stop(self) -> None:
        """SIGTERM: Redis closes its clients and ends (its append-only file is on disk)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=START_TIMEOUT)
        self._wait(lambda: not port_open(self.port), "stop")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def _wait(self, condition, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not condition():
            if time.monotonic() > deadline:
                raise ServiceError(f"redis-server did not {what}:\n{self.log_path.read_text()}")
            time.sleep(0.05)


@contextmanager
def private_redis(directory: Path, *, persistent: bool = True):
    server = RedisServer(directory, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.kill()


# --- PostgreSQL ----------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """The newest PostgreSQL binaries installed from packages (initdb, pg_ctl, pg_dump...)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda path: int(path.parts[4])
    )
    if not found:
        found_initdb = shutil.which("initdb")
        if found_initdb is None:
            raise ServiceError("PostgreSQL's initdb/pg_ctl are not installed")
        return Path(found_initdb).parent
    return found[-1].parent


class PostgresServer:
    """A PostgreSQL cluster of its own in `directory`, on its own port, trust auth."""

    def __init__(self, directory: Path, port: int | None = None):
        self.directory = directory
        self.data = directory / "data"
        self.port = port or free_port()
        self.bin = postgres_bin_dir()
        self.log_path = directory / "postgres.log"
        self.as_root = os.geteuid() == 0

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str, check: bool = True, **options) -> subprocess.CompletedProcess:
        if self.as_root:  # PostgreSQL refuses root: run as the packages' postgres user
            command = ("runuser", "-u", "postgres", "--", *command)
        result = subprocess.run(  # noqa: S603 - our binaries and arguments
            command, capture_output=True, text=True, check=False, **options
        )
        if check and result.returncode != 0:
            raise ServiceError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}"
                f"{result.stderr}\n{self._log()}"
            )
        return result

    def _log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D", str(self.data),
            "-U", "postgres",
            "--auth=trust",
            "--no-sync",
            "-E", "UTF8",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c max_connections=50"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path),
            "-o", options, "-w", "-t", str(START_TIMEOUT), "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """'fast': clients are disconnected, transactions rolled back, then it shuts down."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        status = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "status", check=False)
        return status.returncode == 0

    def create_database(self, name: str) -> None:
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), name)

    def copy_database(self, *, from_url: str, name: str) -> None:
        """Create `name` here with the schema and rows of the database at `from_url`."""
        self.create_database(name)
        dump = subprocess.run(  # noqa: S603 - our binaries and arguments
            [str(self.bin / "pg_dump"), "--format=custom", "--no-owner", from_url],
            capture_output=True,
            check=False,
        )
        if dump.returncode != 0:
            raise ServiceError(f"pg_dump failed: {dump.stderr.decode(errors='replace')}")
        restore = subprocess.run(  # noqa: S603 - our binaries and arguments
            [str(self.bin / "pg_restore"), "--no-owner", "--exit-on-error", "-d", self.url(name)],
            input=dump.stdout,
            capture_output=True,
            check=False,
        )
        if restore.returncode != 0:
            raise ServiceError(f"pg_restore failed: {restore.stderr.decode(errors='replace')}")


@contextmanager
def private_postgres(directory: Path | None = None):
    """A started cluster, removed afterwards. Default folder: a new one under the system's
    temporary folder, which the postgres user can reach (pytest's tmp_path it cannot)."""
    directory = directory or Path(tempfile.mkdtemp(prefix="atlas-postgres-"))
    server = PostgresServer(directory)
    server.init()
    server.start()
    try:
        yield server
    finally:
        if server.running():
            server.stop(mode="immediate")
        shutil.rmtree(directory, ignore_errors=True)
