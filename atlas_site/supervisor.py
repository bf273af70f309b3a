"""Keep bin/run's background programs running: the Celery worker and beat, each its own process.

bin/run starts this file in the background and the web server in the foreground:

    python atlas_site/supervisor.py --log-dir var/log --run-dir var/run

It starts `celery worker` (output appended to var/log/worker.log) and `celery beat`
(var/log/beat.log, its schedule in var/run/celerybeat-schedule), and:

- when one exits while nobody asked it to (a crash, an unrecoverable error, the OOM
  killer), says so on stderr and in its log, and starts it again after a back-off that
  doubles with each exit that came soon after its start (1 s, 2 s, 4 s ... at most 30 s);
- after `MAX_FAST_EXITS` exits in a row each within `FAST_EXIT_SECONDS` of its start,
  stops trying and says why, with the last lines of its log (the other program goes on;
  the supervisor exits 1 once nothing is left to run);
- on SIGTERM (SIGINT and SIGHUP too, unless ignored when it started: see `supervise`), or
  when the process that started it is gone, stops the worker first (SIGTERM: a warm
  shutdown, the running tasks finish; SIGKILL after `--worker-grace` seconds), then beat,
  and exits 0. bin/run stops an embedded PostgreSQL after that.

Each program runs in a session of its own, so a Ctrl-C in the terminal does not reach it:
bin/run and this supervisor stop things in that order. A program's leftover processes (a
pool's children) are killed with its process group once it has exited.

Only the standard library, run as a file (not `-m atlas_site.supervisor`): importing the
`atlas_site` package would set up the Celery app.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

FAST_EXIT_SECONDS = 60.0
MAX_FAST_EXITS = 5
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
POLL_SECONDS = 0.2


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


@dataclass
class Program:
    """One supervised program. `name` reads in a sentence: 'the Celery worker'."""

    name: str
    command: list[str]
    log_path: Path
    stop_grace: float = 10.0  # seconds between SIGTERM and SIGKILL
    process: subprocess.Popen | None = field(default=None, repr=False)
    started_at: float = 0.0
    fast_exits: int = 0
    restart_at: float | None = None
    given_up: bool = False

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - commands built by main()
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C goes to the supervisor, which orders the stop
            )
        self.started_at = time.monotonic()
        self.restart_at = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def note(self, message: str) -> None:
        """Say `message` on stderr and write it in the program's log."""
        say(message)
        with suppress(OSError), self.log_path.open("a") as log:
            log.write(f"==> supervisor: {message}\n")

    def kill_group(self) -> None:
        """SIGKILL what is left of the program's process group (a pool's children)."""
        if self.process is not None:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, wait `stop_grace` seconds, then SIGKILL; the leftovers killed either way."""
        if self.running():
            self.note(f"stopping {self.name} (pid {self.process.pid})")
            with suppress(ProcessLookupError):
                self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_grace)
            except subprocess.TimeoutExpired:
                self.note(f"{self.name} did not stop within {self.stop_grace:g} s; killing it")
                self.kill_group()
                self.process.wait()
        self.kill_group()

    def tail(self, lines: int = 15) -> str:
        with suppress(OSError), self.log_path.open(errors="replace") as log:
            return "".join(deque(log, maxlen=lines))
        return ""


class Supervisor:
    def __init__(
        self,
        programs: list[Program],
        *,
        fast_exit_seconds: float = FAST_EXIT_SECONDS,
        max_fast_exits: int = MAX_FAST_EXITS,
        backoff_first: float = BACKOFF_FIRST,
        backoff_max: float = BACKOFF_MAX,
        poll_seconds: float = POLL_SECONDS,
    ):
        self.programs = programs
        self.fast_exit_seconds = fast_exit_seconds
        self.max_fast_exits = max_fast_exits
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self.poll_seconds = poll_seconds
        self.stop_requested = False
        self.parent = os.getppid()

    def request_stop(self, *_args) -> None:
        """From a signal handler: the loop stops everything at its next turn."""
        self.stop_requested = True

    def run(self) -> int:
        """Start the programs and keep them running until asked to stop (0), or until all
        of them were given up (1)."""
        for program in self.programs:
            program.note(f"starting {program.name} (log: {program.log_path})")
            program.start()
        try:
            while not self.stop_requested:
                if os.getppid() != self.parent:
                    say("the process that started the supervisor is gone; stopping")
                    break
                if all(program.given_up for program in self.programs):
                    return 1
                now = time.monotonic()
                for program in self.programs:
                    self._look_after(program, now)
                time.sleep(self.poll_seconds)
            return 0
        finally:
            for program in self.programs:  # in order: the worker, then beat
                program.stop()

    def _look_after(self, program: Program, now: float) -> None:
        if program.given_up:
            return
        if program.restart_at is not None:
            if now >= program.restart_at:
                program.note(f"starting {program.name} again")
                program.start()
            return
        if program.running():
            return
        status = program.process.returncode
        lived = now - program.started_at
        program.kill_group()
        if lived < self.fast_exit_seconds:
            program.fast_exits += 1
        else:
            program.fast_exits = 0
        how = f"signal {-status}" if status < 0 else f"status {status}"
        if program.fast_exits >= self.max_fast_exits:
            program.given_up = True
            program.note(
                f"ERROR: {program.name} exited ({how}) {program.fast_exits} times in a row, "
                f"each within {self.fast_exit_seconds:g} s of its start; not starting it "
                f"again. Its log, {program.log_path}, ends with:\n{program.tail()}"
            )
            return
        delay = min(self.backoff_first * 2 ** max(program.fast_exits - 1, 0), self.backoff_max)
        program.restart_at = now + delay
        program.note(
            f"{program.name} exited ({how}) after {lived:.0f} s; starting it again in {delay:g} s"
        )


def supervise(programs: list[Program], **policy) -> int:
    """Run `programs` under a Supervisor, stopping them on SIGTERM, SIGINT or SIGHUP.

    A signal ignored when the supervisor starts stays ignored, as a shell does: bin/run
    starts it in the background, where SIGINT is ignored, so a Ctrl-C reaches bin/run, whose
    clean-up stops the web server, then sends SIGTERM here (the worker, then beat), then
    stops an embedded PostgreSQL. Started by hand in a terminal, Ctrl-C stops it directly.
    """
    supervisor = Supervisor(programs, **policy)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        if signum == signal.SIGTERM or signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, supervisor.request_stop)
    return supervisor.run()


def atlas_programs(*, log_dir: Path, run_dir: Path, worker_grace: float) -> list[Program]:
    celery = [sys.executable, "-m", "celery", "-A", "atlas_site"]
    return [
        Program(
            name="the Celery worker",
            command=[*celery, "worker", "-l", "info"],
            log_path=log_dir / "worker.log",
            stop_grace=worker_grace,  # a warm shutdown lets the running tasks finish
        ),
        Program(
            name="Celery beat",
            command=[
                *celery,
                "beat",
                "-l",
                "info",
                "--schedule",
                str(run_dir / "celerybeat-schedule"),
            ],
            log_path=log_dir / "beat.log",
            stop_grace=10,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", type=Path, default=Path("var/log"))
    parser.add_argument("--run-dir", type=Path, default=Path("var/run"))
    parser.add_argument(
        "--worker-grace",
        type=float,
        default=30,
        help="seconds the worker's warm shutdown may take before it is killed (30)",
    )
    args = parser.parse_args(argv)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    programs = atlas_programs(
        log_dir=args.log_dir, run_dir=args.run_dir, worker_grace=args.worker_grace
    )
    return supervise(programs)


if __name__ == "__main__":
    sys.exit(main())
