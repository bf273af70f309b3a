"""INSTALLED_APPS is the one list of Atlas's apps: every package of this repository that looks
like a Django app is in it. Nothing else names the apps (ruff finds first-party packages under
the root, pytest collects tests from the root, the image copies the whole tree), so an app
left out of INSTALLED_APPS would be silently half there: its models unmigrated, its admin,
signals and tasks never loaded.
"""

from django.apps import apps

from atlas_site.testing.image import source_tree

# Files that make a folder a Django app (models.py may be a package).
APP_MARKERS = ("apps.py", "models.py", "models/__init__.py")


def app_packages() -> set[str]:
    """Dotted names of the repository's packages that hold an apps.py or a models module."""
    tree = source_tree()
    found = set()
    for path in tree:
        if {"tests", "migrations"} & set(path.split("/")):
            continue
        for marker in APP_MARKERS:
            folder = path.removesuffix(f"/{marker}")
            if folder != path and f"{folder}/__init__.py" in tree:
                found.add(folder.replace("/", "."))
    return found


def test_every_app_of_the_repository_is_installed():
    packages = app_packages()
    assert {"explore", "governance.pipeline"} <= packages  # the scan finds apps
    installed = {config.name for config in apps.get_app_configs()}
    missing = sorted(packages - installed)
    assert not missing, f"apps of this repository missing from INSTALLED_APPS: {missing}"


def test_every_installed_app_has_a_place_in_the_layers():
    """import-linter checks only the packages it is given (pyproject.toml, root_packages):
    an app whose top package is not there would escape the direction of imports."""
    import tomllib

    from django.conf import settings

    config = tomllib.loads((settings.BASE_DIR / "pyproject.toml").read_text())["tool"]
    checked = set(config["importlinter"]["root_packages"])
    layered = {
        module.strip()
        for contract in config["importlinter"]["contracts"]
        for layer in contract["layers"]
        for module in layer.replace(":", "|").split("|")
    }
    tops = {package.split(".")[0] for package in app_packages()}
    assert tops <= checked, f"apps import-linter does not read: {sorted(tops - checked)}"
    assert checked <= layered, f"packages in no layer: {sorted(checked - layered)}"
