"""Find and start the headless Chromium that renders pages (extra `browser`: Playwright).

The browser is Debian's `chromium` (or `chromium-browser` / `google-chrome` on PATH, or the
`browser_executable` setting), else Playwright's own Chromium where a user installed one
(`playwright install chromium`). Nothing is downloaded at run time.

Launch flags, beyond Playwright's own (`--headless`, `--no-sandbox`, a fresh temporary
profile, `--remote-debugging-pipe`): no GPU, QUIC, first-run, background networking,
component updates or sync; and a network that cannot be used directly. Every request a page
makes is answered by the request gate (reading.browser_gate) through `fetch.py`'s checked
client; should anything get past it (a preconnect, a redirect followed inside Chromium, an
unknown kind of request), it meets a proxy whose name does not resolve, a host resolver
that resolves nothing, and WebRTC that may only use that proxy: it connects nowhere.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from rumination.errors import ConfigError

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
EXTRA_MISSING = "rendering pages needs Playwright: pip install 'rumination[browser]'"
BROWSER_MISSING = (
    "rendering pages needs Chromium: apt install chromium (or set browser_executable, "
    "or run `playwright install chromium`)"
)
LAUNCH_ARGS = (
    "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--mute-audio",
    # a dead end for anything the request gate does not answer (see the module docstring)
    "--proxy-server=http://no-direct-network.invalid:9", "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
)


def playwright_installed() -> bool:
    return importlib.util.find_spec("playwright") is not None


def find_executable(configured: str | None = None) -> str | None:
    """The Chromium to launch; None when only Playwright's own browser could be used.
    A configured executable that does not exist is a ConfigError."""
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise ConfigError(f"browser_executable {configured} not found; {BROWSER_MISSING}")
        return found
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def playwright_browser_installed() -> bool:
    """Whether `playwright install chromium` left a browser where Playwright looks for it
    (headless launches use its headless shell where it installed one)."""
    base = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
                or Path.home() / ".cache/ms-playwright")
    return any(base.glob("chromium-*/chrome-linux*/chrome")) or any(
        base.glob("chromium_headless_shell-*/chrome-linux*/*headless_shell"))


def unavailable(configured: str | None = None) -> str | None:
    """Why no page can be rendered here (one line naming what to install), or None."""
    if not playwright_installed():
        return EXTRA_MISSING
    if find_executable(configured) is None and not playwright_browser_installed():
        return BROWSER_MISSING
    return None


async def launch(executable: str | None) -> tuple[Playwright, Browser]:
    """A started Playwright driver and its headless Chromium; both to be closed by the caller
    (`Browser.close`, then `Playwright.stop`). If this process dies, the driver sees its pipe
    close and takes the browser down with it (tests/test_browser_render.py checks)."""
    from playwright.async_api import async_playwright

    driver = await async_playwright().start()
    try:
        browser = await driver.chromium.launch(
            executable_path=executable, headless=True, args=list(LAUNCH_ARGS)
        )
    except BaseException:
        await driver.stop()
        raise
    return driver, browser
