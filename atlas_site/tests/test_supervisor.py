"""atlas_site/supervisor.py, which bin/run uses to keep the Celery worker and beat running.

The supervisor runs as bin/run runs it, a process of its own, here over small Python
programs that stand for the worker and beat: they record their pid and the signals they
get in files, exit when told, crash on purpose, or ignore SIGTERM.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import suppress
from pathlib import Path

import pytest

SUPERVISOR = Path(__file__).resolve().parents[1] / "supervisor.py"

DRIVER = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("atlas_supervisor", {supervisor!r})
module = importlib.util.module_from_spec(spec)
sys.modules["atlas_supervisor"] = module
spec.loader.exec_module(module)
programs = [
    module.Program(name=name, command=command, log_path=Path(log), stop_grace=grace)
    for name, command, log, grace in {programs!r}
]
sys.exit(module.supervise(programs, **{policy!r}))
"""

# A program that records its pid, and on SIGTERM records it, takes `stop_seconds`, and ends.
PROGRAM = """
import os, signal, subprocess, sys, time
name, folder, mode = sys.argv[1], sys.argv[2], sys.argv[3]
def record(event):
    with open(os.path.join(folder, "events"), "a") as events:
        events.write(f"{{name}} {{event}} {{os.getpid()}} {{time.monotonic()}}\\n")
starts = os.path.join(folder, name + ".starts")
with open(starts, "a") as f:
    f.write(f"{{os.getpid()}}\\n")
started = len(open(starts).read().split())
record("start")
if mode == "crash" or (mode == "crash-once" and started == 1):
    print(f"{{name}}: something went wrong", flush=True)
    sys.exit(3 if mode == "crash-once" else 1)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    def stop(*_):
        record("term")
        time.sleep({stop_seconds})
        record("exit")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
# A child left in the program's process group, as a prefork pool's are.
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.path.join(folder, name + ".child"), "w") as f:
    f.write(str(child.pid))
while True:
    time.sleep(0.05)
"""

FAST = {"backoff_first": 0.1, "backoff_max": 0.4, "poll_seconds": 0.05}


class Run:
    """The supervisor started over test programs; its stderr collected in a file."""

    def __init__(self, tmp_path: Path, programs: list[tuple], policy: dict, wrap=None):
        self.folder = tmp_path
        script = tmp_path / "program.py"
        script.write_text(textwrap.dedent(PROGRAM.format(stop_seconds=0.3)))
        specs = [
            (
                name,
                [sys.executable, str(script), name, str(tmp_path), mode],
                str(tmp_path / f"{name}.log"),
                grace,
            )
            for name, mode, grace in programs
        ]
        driver = tmp_path / "driver.py"
        driver.write_text(DRIVER.format(supervisor=str(SUPERVISOR), programs=specs, policy=policy))
        self.stderr_path = tmp_path / "supervisor.err"
        command = [sys.executable, str(driver)]
        if wrap:
            command = wrap(command)
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(command, stderr=stderr, start_new_session=True)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def starts(self, name: str) -> list[int]:
        path = self.folder / f"{name}.starts"
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def child(self, name: str) -> int:
        return int((self.folder / f"{name}.child").read_text())

    def events(self) -> list[tuple[str, str, float]]:
        path = self.folder / "events"
        rows = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
        return [(name, event, float(at)) for name, event, _pid, at in rows]

    def wait_for(self, condition, what: str, timeout: float = 15):
        deadline = time.monotonic() + timeout
        while not (found := condition()):
            assert time.monotonic() < deadline, f"{what} within {timeout} s\n{self.stderr}"
            time.sleep(0.05)
        return found

    def close(self):
        """After a failed test: nothing of it left running."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for starts in self.folder.glob("*.starts"):
            for pid in starts.read_text().split():
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(pid), signal.SIGKILL)


def gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for init to reap it counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}


@pytest.fixture
def runs():
    started: list[Run] = []
    yield started
    for run in started:
        run.close()


def test_a_program_that_exits_is_started_again(tmp_path, runs):
    run = Run(tmp_path, [("worker", "crash-once", 5)], FAST)
    runs.append(run)
    first, second = run.wait_for(
        lambda: len(run.starts("worker")) == 2 and run.starts("worker"), "no restart"
    )
    run.wait_for(lambda: (tmp_path / "worker.child").exists(), "the second run did not settle")
    assert gone(first) and not gone(second)
    assert "worker exited (status 3) after 0 s; starting it again in 0.1 s" in run.stderr
    log = (tmp_path / "worker.log").read_text()
    assert "worker: something went wrong" in log  # the program's own output
    assert "==> supervisor: worker exited (status 3)" in log  # and why it started again

    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(timeout=15) == 0
    assert gone(second) and gone(run.child("worker"))


def test_sigterm_stops_the_worker_then_beat_and_kills_what_does_not_stop(tmp_path, runs):
    run = Run(
        tmp_path,
        [("worker", "serve", 5), ("beat", "serve", 5), ("stubborn", "stubborn", 0.5)],
        FAST,
    )
    runs.append(run)
    run.wait_for(
        lambda: all(
            (tmp_path / f"{name}.child").exists() for name in ("worker", "beat", "stubborn")
        ),
        "not all started",
    )
    pids = {name: run.starts(name)[0] for name in ("worker", "beat", "stubborn")}
    children = {name: run.child(name) for name in pids}

    started = time.monotonic()
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(timeout=20) == 0
    took = time.monotonic() - started

    order = [(name, event) for name, event, _at in run.events() if event in ("term", "exit")]
    assert order == [("worker", "term"), ("worker", "exit"), ("beat", "term"), ("beat", "exit")]
    assert "stubborn did not stop within 0.5 s; killing it" in run.stderr
    assert all(gone(pid) for pid in [*pids.values(), *children.values()])  # pool leftovers too
    assert took < 5, took


def test_sigint_stops_everything_too(tmp_path, runs):
    run = Run(tmp_path, [("worker", "serve", 5)], FAST)
    runs.append(run)
    run.wait_for(lambda: (tmp_path / "worker.child").exists(), "not started")
    run.process.send_signal(signal.SIGINT)  # Ctrl-C
    assert run.process.wait(timeout=15) == 0
    assert [event for _name, event, _at in run.events()] == ["start", "term", "exit"]


def test_a_sigint_ignored_at_start_stays_ignored_so_bin_run_orders_the_stop(tmp_path, runs):
    # bin/run starts the supervisor in the background, where bash ignores SIGINT: a Ctrl-C
    # must leave it to bin/run's clean-up (web server, then SIGTERM here, then PostgreSQL).
    run = Run(
        tmp_path,
        [("worker", "serve", 5)],
        FAST,
        wrap=lambda command: ["bash", "-c", '"$@" & wait', "bash", *command],
    )
    runs.append(run)
    run.wait_for(lambda: (tmp_path / "worker.child").exists(), "not started")
    supervisor = int(
        subprocess.check_output(["pgrep", "-P", str(run.process.pid)], text=True).split()[0]
    )
    os.kill(supervisor, signal.SIGINT)
    time.sleep(1)
    assert not gone(supervisor) and not gone(run.starts("worker")[0])
    os.kill(supervisor, signal.SIGTERM)
    assert run.process.wait(timeout=15) == 0  # bash's wait returns with the supervisor
    assert [event for _name, event, _at in run.events()] == ["start", "term", "exit"]


def test_repeated_fast_crashes_give_up_with_the_log_and_the_rest_goes_on(tmp_path, runs):
    run = Run(
        tmp_path,
        [("worker", "crash", 5), ("beat", "serve", 5)],
        {**FAST, "max_fast_exits": 3, "fast_exit_seconds": 30},
    )
    runs.append(run)
    run.wait_for(lambda: "not starting it again" in run.stderr, "it did not give up")
    assert len(run.starts("worker")) == 3
    assert (
        "ERROR: worker exited (status 1) 3 times in a row, each within 30 s of its start; "
        "not starting it again." in run.stderr
    )
    assert "worker: something went wrong" in run.stderr  # the end of its log
    assert "starting it again in 0.1 s" in run.stderr and "starting it again in 0.2 s" in run.stderr
    time.sleep(0.5)
    assert len(run.starts("worker")) == 3  # and it stays given up
    assert run.process.poll() is None and not gone(run.starts("beat")[0])

    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(timeout=15) == 0


def test_nothing_left_to_run_ends_the_supervisor_with_status_1(tmp_path, runs):
    run = Run(tmp_path, [("worker", "crash", 5)], {**FAST, "max_fast_exits": 2})
    runs.append(run)
    assert run.process.wait(timeout=15) == 1
    assert "not starting it again" in run.stderr


def test_the_programs_stop_when_whoever_started_the_supervisor_is_gone(tmp_path, runs):
    # bin/run killed with SIGKILL: the supervisor must not leave the worker running.
    run = Run(
        tmp_path,
        [("worker", "serve", 5)],
        FAST,
        wrap=lambda command: ["bash", "-c", '"$@" & wait', "bash", *command],
    )
    runs.append(run)
    run.wait_for(lambda: (tmp_path / "worker.child").exists(), "not started")
    worker, child = run.starts("worker")[0], run.child("worker")
    run.process.kill()  # the bash that started it
    run.process.wait()
    run.wait_for(
        lambda: gone(worker) and gone(child), "the worker outlived the supervisor's parent"
    )
    assert "the process that started the supervisor is gone; stopping" in run.stderr


def test_bin_run_programs_are_the_worker_and_beat_as_separate_processes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("atlas_supervisor", SUPERVISOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules["atlas_supervisor"] = module
    spec.loader.exec_module(module)
    worker, beat = module.atlas_programs(
        log_dir=tmp_path / "log", run_dir=tmp_path / "run", worker_grace=30
    )
    assert worker.command[-4:] == ["-A", "atlas_site", "worker", "-l", "info"][-4:]
    assert "-B" not in worker.command and "--beat" not in worker.command
    assert beat.command[beat.command.index("-A") + 2] == "beat"
    assert beat.command[-1] == str(tmp_path / "run" / "celerybeat-schedule")
    assert (worker.log_path.name, beat.log_path.name) == ("worker.log", "beat.log")
    assert worker.stop_grace == 30
