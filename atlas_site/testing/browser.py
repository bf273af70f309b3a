"""Browser tests: Playwright driving Debian's Chromium against Django's live server.

Browsers cannot be downloaded on Atlas's machines, so Playwright launches the system
Chromium (`/usr/bin/chromium`, or ATLAS_CHROMIUM); `bin/test` installs Debian's
`chromium` package when it is missing. Tests that use these fixtures are marked
`browser` and skipped with a clear reason where no Chromium can be found.

    def test_viewer_sees_overview(live_server, browser_login, viewer):
        page = browser_login(viewer)
        page.goto(f"{live_server.url}/dashboards/")

Screenshots go to test-artifacts/screenshots/ (kept by CI as artifacts, ignored by git).
"""

import os
import shutil
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test's thread; the ORM calls a test
# makes between page actions are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

PASSWORD = "correct-horse-battery"  # noqa: S105  (the password conftest.make_user gives)
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def chromium_path() -> str | None:
    candidate = os.environ.get("ATLAS_CHROMIUM") or "/usr/bin/chromium"
    if Path(candidate).is_file() and os.access(candidate, os.X_OK):
        return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch options, pointed at the system Chromium."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("No Chromium found: install Debian's chromium package (bin/test does).")
    return {
        **browser_type_launch_args,
        "executable_path": executable,
        "args": ["--no-sandbox", "--disable-dev-shm-usage"],
    }


@pytest.fixture
def browser_login(page, live_server):
    """Log a user in through the admin login form; returns the logged-in page."""

    def _login(user, password: str = PASSWORD):
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", user.get_username())
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_load_state("networkidle")
        return page

    return _login


@pytest.fixture
def screenshot(page):
    """Save the page as test-artifacts/screenshots/<name>.png; returns the path."""

    def _screenshot(name: str) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return _screenshot


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Browser tests run last: the live server they start is a thread that lives until
    the session ends, and the promotion's evaluation pool forks; a fork taken while
    another thread holds a lock can deadlock the child."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
