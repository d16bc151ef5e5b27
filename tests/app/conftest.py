"""Shared fixtures of the app's browser tests: Debian's Chromium, headless, offline."""

import pytest


@pytest.fixture(scope="session")
def browser_type_launch_args():
    from tests.app.test_browser import CHROMIUM

    return {"executable_path": CHROMIUM, "headless": True,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync"]}


@pytest.fixture(scope="session")
def browser_context_args():
    # the app's CSP forbids eval; Playwright's wait_for_function needs it in the test only
    return {"viewport": {"width": 1200, "height": 760}, "bypass_csp": True,
            "accept_downloads": True}
