"""docker-compose.yml, read as data (no Docker engine here): every long-running service has a
health check, and what the checks and commands name exists in the image.

The worker's and beat's checks are also run here, as the container would run them: the
worker's against a real worker node named as in the container (marked `worker`), beat's
against schedule files of a chosen age.
"""

import importlib.util
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from celery.app.utils import find_app
from django.conf import settings
from django.urls import Resolver404, resolve

from atlas_site.celery import app as celery_app
from atlas_site.testing.image import image_files

ROOT = Path(settings.BASE_DIR)
COMPOSE = ROOT / "docker-compose.yml"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
IMAGE_ROOT = "/app"  # Dockerfile: WORKDIR /app


def services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def long_running() -> dict[str, dict]:
    # Every service but the one-shot jobs (restart: "no", e.g. creating the bucket).
    return {name: spec for name, spec in services().items() if spec.get("restart") != "no"}


def check_of(service: str) -> list[str]:
    return services()[service]["healthcheck"]["test"]


def shell_of(service: str) -> str:
    kind, command = check_of(service)
    assert kind == "CMD-SHELL"
    return command


def entrypoint_cases() -> dict[str, str]:
    """docker/entrypoint.sh's `case` branches: name -> the command it execs."""
    text = ENTRYPOINT.read_text()
    return {
        match[1]: match[2]
        for match in re.finditer(r"^([\w.|-]+)\)\n(.*?)\n\s*;;", text, re.M | re.S)
    }


def test_every_long_running_service_has_a_health_check():
    running = long_running()
    assert {"db", "redis", "minio", "web", "worker", "beat"} <= set(running)
    for name, spec in running.items():
        check = spec.get("healthcheck") or {}
        assert check.get("test"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for option in ("interval", "timeout", "retries"):
            assert option in check, f"{name}'s healthcheck has no {option}"


def test_the_services_commands_are_entrypoint_branches():
    cases = entrypoint_cases()
    for name in ("migrate", "web", "worker", "beat"):
        command = services()[name]["command"]
        assert command == [name]
        assert name in cases, f"docker/entrypoint.sh has no {name!r} branch"


def test_migrations_run_once_in_a_one_shot_service_everything_else_waits_for():
    migrate = services()["migrate"]
    assert migrate["restart"] == "no" and "healthcheck" not in migrate
    for name in ("web", "worker", "beat"):
        after = services()[name]["depends_on"]["migrate"]
        assert after == {"condition": "service_completed_successfully"}, name
        assert "web" not in services()[name]["depends_on"], name  # workers need no web
    # The deploy step is migrate's alone: web starts gunicorn straight away.
    cases = entrypoint_cases()
    assert "manage.py migrate" in cases["migrate"] and "ensure_partitions" in cases["migrate"]
    assert "migrate" not in cases["web"] and "collectstatic" not in cases["web"]
    assert cases["web"].strip().startswith('echo "atlas: starting gunicorn')
    # Web's own check is its readiness: its database and cache, not the workers.
    assert "/readyz" in " ".join(check_of("web"))


def test_the_image_holds_every_module_the_services_load():
    # manage.py, the Celery app the worker and its check name, gunicorn's WSGI module, and the
    # package of every first-party app Django loads (test_image.py checks each of their files).
    needed = {"manage.py", "atlas_site/__init__.py", "atlas_site/celery.py", "atlas_site/wsgi.py"}
    for entry in settings.INSTALLED_APPS:
        top = entry.split(".")[0]
        spec = importlib.util.find_spec(top)
        # A package of this repository (not one installed in .venv, also under ROOT).
        if spec and spec.origin and Path(spec.origin).parent == ROOT / top:
            needed.add(f"{top}/__init__.py")
    assert len(needed) > 5, "no installed app of this repository was found"
    in_image = image_files()
    missing = sorted(path for path in needed if in_image.get(f"{IMAGE_ROOT}/{path}") != path)
    assert not missing, f"the image would not hold {missing}"


def test_the_worker_check_pings_its_own_node_of_the_entrypoints_app():
    command = shell_of("worker")
    words = shlex.split(command.replace("$$", "$"), posix=True)
    assert words[:2] == ["celery", "-A"]
    app_module = words[2]
    # What `celery -A` loads: the module's `app`, or its `celery` submodule's.
    assert find_app(app_module) is celery_app
    assert words[3:5] == ["inspect", "ping"]
    # $$ survives compose's interpolation as one $, expanded by the container's shell.
    assert '"celery@$$HOSTNAME"' in command
    # The worker runs the same app under its default node name (celery@<hostname>), so the
    # check's destination is this container's own worker and no other.
    worker = entrypoint_cases()["worker"]
    assert f"celery -A {app_module} worker" in worker
    assert " -n " not in worker and "--hostname" not in worker


def run_worker_check(hostname: str) -> subprocess.CompletedProcess:
    """The worker's check as its container's shell runs it, with this venv's celery."""
    from atlas_site.testing.celery_worker import WORKER_SETTINGS

    command = shell_of("worker").replace("$$", "$").replace(">/dev/null", "")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOSTNAME": hostname,
        "DJANGO_SETTINGS_MODULE": WORKER_SETTINGS,
        "REDIS_URL": settings.REDIS_URL,
    }
    return subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_worker_check_fails_when_no_worker_answers():
    result = run_worker_check(f"nobody-{uuid.uuid4().hex[:8]}")
    assert result.returncode != 0, result.stdout + result.stderr
    assert "No nodes replied" in result.stdout + result.stderr


@pytest.mark.worker
@pytest.mark.django_db
def test_the_worker_check_passes_against_a_running_worker():
    from atlas_site.testing.celery_worker import start_worker

    # Named as in the container: celery@<hostname> (the worker's default node name).
    with start_worker(queue=f"compose-{uuid.uuid4().hex[:8]}", name="celery"):
        result = run_worker_check(socket.gethostname())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pong" in result.stdout


def test_the_beat_check_watches_the_schedule_file_the_entrypoint_writes():
    beat = entrypoint_cases()["beat"]
    schedule = re.search(r"--schedule\s+(\S+)", beat)[1]
    assert schedule.startswith(f"{IMAGE_ROOT}/var/")  # var/ is the one place atlas may write
    code = check_of("beat")[3]
    assert check_of("beat")[:3] == ["CMD", "python", "-c"]
    assert f'"{schedule}*"' in code


def run_beat_check(schedule_dir: Path) -> int:
    code = check_of("beat")[3].replace(f"{IMAGE_ROOT}/var/run", str(schedule_dir))
    return subprocess.run([sys.executable, "-c", code], timeout=60).returncode


def test_the_beat_check_fails_on_a_schedule_file_beat_stopped_writing(tmp_path):
    assert run_beat_check(tmp_path) == 1  # beat never started
    # The shelve's files (one with gdbm; .dat/.dir/.bak with the fallback dbm).
    files = [tmp_path / f"celerybeat-schedule{suffix}" for suffix in (".dat", ".dir")]
    for file in files:
        file.write_bytes(b"x")
    assert run_beat_check(tmp_path) == 0
    stale = time.time() - 11 * 60
    for file in files:
        os.utime(file, (stale, stale))
    assert run_beat_check(tmp_path) == 1
    os.utime(files[0])  # written again just now
    assert run_beat_check(tmp_path) == 0


def test_the_web_check_asks_a_routed_url():
    code = check_of("web")[3]
    url = re.search(r'"http://localhost:8000(/[^"]*)"', code)[1]
    try:
        match = resolve(url)
    except Resolver404:
        pytest.fail(f"the web healthcheck asks {url}, which no URL pattern serves")
    assert match.func.__name__ == "readyz"


def test_the_monitoring_profile_scrapes_web_and_loads_atlas_rules_and_dashboard():
    """Prometheus and Grafana (profile "monitoring", off by default) read the files this
    repository holds, mounted where their configuration looks for them."""
    prometheus, grafana = services()["prometheus"], services()["grafana"]
    assert prometheus["profiles"] == grafana["profiles"] == ["monitoring"]
    # Their configuration, as mounted: the repository's folder -> the container's.
    mounts = {
        volume.split(":")[1]: ROOT / volume.split(":")[0]
        for spec in (prometheus, grafana)
        for volume in spec["volumes"]
        if volume.startswith("./")
    }
    config = yaml.safe_load((mounts["/etc/prometheus"] / "prometheus.yml").read_text())
    for rules in config["rule_files"]:
        assert (mounts["/etc/prometheus"] / rules).is_file(), rules
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    resolve(job["metrics_path"])  # a routed URL of Atlas's
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in services() and services()[host]["ports"][0].endswith(f":{port}")
    # Atlas answers to that host name: in compose's default and in .env.example.
    atlas_env = services()["web"]["environment"]
    assert host in atlas_env["ALLOWED_HOSTS"].split(":-")[1].rstrip("}").split(",")
    example = (ROOT / ".env.example").read_text()
    assert host in re.search(r"^ALLOWED_HOSTS=(.*)$", example, re.M)[1].split(",")

    provisioning = mounts["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090" and source["isDefault"]
    (provider,) = yaml.safe_load((provisioning / "dashboards/atlas.yml").read_text())["providers"]
    dashboard = mounts[provider["options"]["path"] + "/atlas.json"]
    assert dashboard == ROOT / "docker/grafana/atlas-dashboard.json" and dashboard.is_file()
