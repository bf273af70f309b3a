"""The Docker image holds what Atlas runs from and nothing it must not, read from the Dockerfile
and .dockerignore (no Docker engine here; atlas_site/testing/image.py follows both).

What the image must hold: every installed app of this repository (the folder of each entry of
INSTALLED_APPS that is a project package), the template and static folders the settings name,
manage.py, docker/entrypoint.sh (the image's ENTRYPOINT) and examples/ (read by seed_demo),
each file where Python and Django look for it (under WORKDIR). Tests and test support are
left out on purpose (.dockerignore says why), so the image must also hold every first-party
module that any module it holds imports.
"""

import ast
import importlib.util
import json
import os
import posixpath
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from dockerfile_parse import DockerfileParser

from atlas_site.testing.image import (
    DOCKERFILE,
    DOCKERIGNORE,
    ROOT,
    build_context,
    image_files,
    source_tree,
    workdir,
)

ENTRYPOINT_SOURCE = "docker/entrypoint.sh"
# Read by the seed_demo command (orchestration/management/commands/seed_demo.py).
NEEDED_FOLDERS = ["examples"]
NEEDED_FILES = ["manage.py", ENTRYPOINT_SOURCE]


def left_out_on_purpose(path: str) -> bool:
    """Test code and test support (.dockerignore: `**/tests`, `atlas_site/testing`)."""
    return "tests" in path.split("/")[:-1] or path.startswith("atlas_site/testing/")


def project_folder(path: str | Path) -> str | None:
    """`path` relative to the repository root when it is a folder of this project (not a
    library installed in .venv, which also lies under the root)."""
    path = Path(path).resolve()
    if not path.is_relative_to(ROOT) or "site-packages" in path.parts:
        return None
    return path.relative_to(ROOT).as_posix()


def installed_app_folders() -> set[str]:
    """The folder of each INSTALLED_APPS entry that is a project package, and of its top-level
    package (`governance.pipeline` needs `governance/` too; `atlas_site.admin_site.X` is in
    `atlas_site/`)."""
    folders = set()
    for entry in settings.INSTALLED_APPS:
        spec = importlib.util.find_spec(entry.split(".")[0])
        for location in (spec and spec.submodule_search_locations) or []:
            if folder := project_folder(location):
                folders.add(folder)
    for config in apps.get_app_configs():
        if folder := project_folder(config.path):
            folders.add(folder)
    return folders


def settings_folders() -> set[str]:
    """The template and static folders the settings name."""
    named = [Path(d) for template in settings.TEMPLATES for d in template.get("DIRS", [])]
    for entry in settings.STATICFILES_DIRS:
        named.append(Path(entry[1] if isinstance(entry, tuple | list) else entry))
    return {folder for path in named if (folder := project_folder(path))}


def needed_files() -> dict[str, str]:
    """Root-relative path of each file the image needs -> why."""
    needed = dict.fromkeys(NEEDED_FILES, "needed at run time")
    reasons = dict.fromkeys(installed_app_folders(), "an installed app")
    reasons |= dict.fromkeys(settings_folders(), "named by the settings")
    reasons |= dict.fromkeys(NEEDED_FOLDERS, "read by seed_demo")
    for folder, reason in reasons.items():
        files = [
            path
            for path in source_tree()
            if path.startswith(f"{folder}/") and not left_out_on_purpose(path)
        ]
        assert files, f"{folder}/ has no files"
        needed |= dict.fromkeys(files, f"{folder}/: {reason}")
    return needed


def missing_from_image(dockerfile: str | None = None, context=None) -> list[str]:
    """What the image built from `dockerfile` (default: the repository's) would lack."""
    dockerfile = DOCKERFILE.read_text() if dockerfile is None else dockerfile
    files = image_files(dockerfile, context)
    app_dir = workdir(dockerfile)
    missing = []
    for path, reason in sorted(needed_files().items()):
        if path == ENTRYPOINT_SOURCE:
            present = path in files.values()
        else:
            present = files.get(posixpath.join(app_dir, path)) == path
        if not present:
            missing.append(f"{path} ({reason})")
    return missing


def test_the_image_holds_every_installed_app_and_file_atlas_runs_from():
    folders = installed_app_folders()
    # The detection finds the apps (governance's four under one package), not nothing.
    assert {"atlas_site", "governance", "governance/pipeline"} <= folders
    assert len(folders) >= 8
    assert settings_folders() == {"templates", "static"}
    missing = missing_from_image()
    assert not missing, "the image would not hold:\n" + "\n".join(missing)


# The Dockerfile before it copied the tree, one COPY per app, with an app forgotten.
PER_APP_DOCKERFILE = """\
FROM python:3.12-slim
WORKDIR /app
COPY requirements.txt /tmp/requirements.txt
COPY manage.py pyproject.toml ./
COPY atlas_site ./atlas_site
COPY explore ./explore
COPY chart ./chart
COPY navigate ./navigate
COPY governance ./governance
COPY static ./static
COPY templates ./templates
COPY docker/entrypoint.sh /usr/local/bin/atlas-entrypoint
ENTRYPOINT ["atlas-entrypoint"]
"""


def test_a_dockerfile_that_forgets_an_app_or_the_examples_fails_the_check():
    missing = missing_from_image(PER_APP_DOCKERFILE)
    assert any(
        line.startswith("dashboards/apps.py (dashboards/: an installed app)") for line in missing
    )
    assert any(line.startswith("examples/") for line in missing)
    assert not any(
        line.startswith(("explore/", "manage.py", ENTRYPOINT_SOURCE)) for line in missing
    )


def test_a_dockerignore_that_drops_an_app_fails_the_check():
    # The same tree, sent with a .dockerignore that also leaves out the migrations.
    context = build_context(ROOT, DOCKERIGNORE.read_text() + "\n**/migrations\n")
    missing = missing_from_image(context=context)
    assert any(line.startswith("explore/migrations/0001_initial.py") for line in missing)


def test_the_entrypoint_is_the_script_the_image_runs():
    parser = DockerfileParser(fileobj=DOCKERFILE.open("rb"))
    [entrypoint] = [
        item["value"] for item in parser.structure if item["instruction"] == "ENTRYPOINT"
    ]
    command = json.loads(entrypoint)[0]
    files = image_files()
    path = command if command.startswith("/") else f"/usr/local/bin/{command}"
    assert files.get(path) == ENTRYPOINT_SOURCE


def make_tree(root: Path, paths: list[str]) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("x")


# What a developer's or CI's tree holds and the image must not.
NOT_FOR_THE_IMAGE = [
    ".env",
    ".env.local",
    ".git/HEAD",
    ".venv/bin/python",
    ".data/postgres/PG_VERSION",
    "var/static/admin/base.css",
    "var/log/worker.log",
    "test-artifacts/screenshots/login.png",
    "bench/out/promote.json",
    "bench/promote.py",
    ".pytest_cache/v/cache/lastfailed",
    ".ruff_cache/0.17/x",
    ".mypy_cache/3.12/x.json",
    ".hypothesis/examples/x",
    "conftest.py",
    "explore/tests/test_services.py",
    "governance/compliance/tests/test_pii_scanner.py",
    "atlas_site/testing/pii_labelled.py",
    "explore/__pycache__/models.cpython-312.pyc",
    "celerybeat-schedule",
]
FOR_THE_IMAGE = [
    "manage.py",
    "explore/models.py",
    "governance/compliance/pii/scanner.py",
    "atlas_site/settings/production.py",
    "examples/customers.csv",
    "static/vendor/chart.js",
    "templates/admin/base_site.html",
    "docker/entrypoint.sh",
]


def test_the_dockerignore_keeps_dev_files_secrets_and_tests_out(tmp_path):
    make_tree(tmp_path, NOT_FOR_THE_IMAGE + FOR_THE_IMAGE)
    context = build_context(tmp_path, DOCKERIGNORE.read_text())
    assert not context & set(NOT_FOR_THE_IMAGE)
    assert set(FOR_THE_IMAGE) <= context


@pytest.mark.parametrize(
    ("patterns", "sent"),
    [
        # Relative to the context root: `var` is the top-level folder only.
        ("var", {"explore/var/x.py", "a/tests/t.py", "keep.py"}),
        # `**` at any depth; a matched folder takes everything under it.
        ("**/tests", {"var/x", "explore/var/x.py", "keep.py"}),
        # `!` brings a path back; the last matching line wins.
        ("var\n!var/x", {"var/x", "explore/var/x.py", "a/tests/t.py", "keep.py"}),
        ("!var/x\nvar", {"explore/var/x.py", "a/tests/t.py", "keep.py"}),
        # `*` stays within one folder: `*.py` is the root's Python files only.
        ("# a comment\n*.py\n", {"var/x", "explore/var/x.py", "a/tests/t.py"}),
    ],
)
def test_dockerignore_patterns_follow_dockers_rules(tmp_path, patterns, sent):
    make_tree(tmp_path, ["var/x", "explore/var/x.py", "a/tests/t.py", "keep.py"])
    # docker-py always sends .dockerignore itself (Docker reads it; COPY leaves it out).
    assert build_context(tmp_path, patterns) - {".dockerignore"} == sent


def first_party_files(module: str) -> list[str]:
    """The files of the source tree that importing `module` runs (its package's too)."""
    parts = module.split(".")
    found = []
    for depth in range(1, len(parts) + 1):
        base = "/".join(parts[:depth])
        found += [p for p in (f"{base}.py", f"{base}/__init__.py") if p in source_tree()]
    return found


def imported_modules(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text(), filename=path)
    package = path.removesuffix(".py").split("/")[:-1]
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            modules.add(base)
            # `from package import module` imports a module, when there is one of that name.
            modules.update(f"{base}.{alias.name}" for alias in node.names)
    return modules


def test_nothing_in_the_image_imports_what_the_image_leaves_out():
    files = image_files()
    app_dir = workdir()
    in_image = {source for target, source in files.items() if target.startswith(f"{app_dir}/")}
    broken = []
    for path in sorted(in_image):
        if not path.endswith(".py"):
            continue
        for module in sorted(imported_modules(path)):
            broken += [
                f"{path} imports {module} ({needed} is not in the image)"
                for needed in first_party_files(module)
                if needed not in in_image
            ]
    assert not broken, "\n".join(broken)


def test_the_build_time_collectstatic_loads_production_settings(tmp_path):
    """The Dockerfile's RUN that collects static files sets placeholder values for what
    production settings require: with exactly those (and nothing else from this machine's
    environment), the settings load, so the build does not stop there."""
    parser = DockerfileParser(fileobj=DOCKERFILE.open("rb"))
    (run,) = [
        item["value"]
        for item in parser.structure
        if item["instruction"] == "RUN" and "collectstatic" in item["value"]
    ]
    command = run[run.index("SECRET_KEY=") : run.index("python manage.py collectstatic")]
    placeholders = dict(word.split("=", 1) for word in shlex.split(command))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "atlas_site.settings.production",
        "STATIC_ROOT": str(tmp_path / "static"),
        **placeholders,
    }
    code = "import django; django.setup(); print('settings loaded')"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "settings loaded" in result.stdout
