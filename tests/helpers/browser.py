"""A real headless Chromium (Debian's, driven by Playwright) for the page tests.

`make browser` installs Debian's ``chromium`` where it can (as root, as CI runs). Without one a
page test skips, except under ``CI=true``, where a skipped page test would hide a broken page:
there it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest


def chromium_path() -> str | None:
    names = ("chromium", "chromium-browser", "google-chrome")
    for candidate in (os.environ.get("CHROMIUM"), *(shutil.which(name) for name in names)):
        if candidate:
            return candidate
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}: CI runs the page tests (make browser installs Chromium as root)")
    pytest.skip(reason)


LOCAL = ("file://", "http://127.0.0.1", "http://localhost", "data:", "blob:")


@contextlib.contextmanager
def browser_page() -> Iterator[Any]:
    """A fresh page that may load nothing but local files and the loopback server: any other
    request is refused and recorded in ``page.blocked`` (a script from a CDN, say), and script
    errors and console errors in ``page.errors``."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (make install)")
    executable = chromium_path()
    if executable is None:
        _unavailable("no Chromium (apt-get install chromium, or set CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(headless=True, executable_path=executable)
        try:
            context = browser.new_context()
            blocked: list[str] = []
            errors: list[str] = []

            def route(request_route: Any) -> None:
                url = request_route.request.url
                if url.startswith(LOCAL):
                    request_route.continue_()
                else:
                    blocked.append(url)
                    request_route.abort("internetdisconnected")

            context.route("**/*", route)
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.blocked, page.errors = blocked, errors
            yield page
        finally:
            browser.close()
