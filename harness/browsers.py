"""Launch the browsers the e2e suite drives: system builds first, Playwright's own otherwise."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from playwright.sync_api import Browser, BrowserContext, Error, Playwright

ENGINES = ("chromium", "firefox", "webkit")
SYSTEM_CHROMIUM = Path("/usr/bin/chromium")
SYSTEM_FIREFOX = Path("/usr/bin/firefox-esr")

# Fake camera and microphone, no prompts, and ICE allowed on 127.0.0.1 (TURN runs on loopback).
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FIREFOX_PREFS: dict[str, Any] = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.peerconnection.ice.loopback": True,
}


class EngineUnavailable(Exception):
    """The engine cannot be launched on this machine; the reason says why."""


def _missing_executable(error: Error) -> bool:
    text = str(error)
    return "Executable doesn't exist" in text or "playwright install" in text


def launch(p: Playwright, engine: str) -> Browser:
    """Launch one browser of `engine` with fake media, preferring the system package."""
    headless = os.environ.get("E2E_HEADED", "0") != "1"
    try:
        if engine == "chromium":
            kwargs: dict[str, Any] = {}
            if SYSTEM_CHROMIUM.exists():
                kwargs["executable_path"] = str(SYSTEM_CHROMIUM)
            return p.chromium.launch(headless=headless, args=CHROMIUM_ARGS, **kwargs)
        if engine == "firefox":
            if SYSTEM_FIREFOX.exists():
                # ESR is driven over WebDriver BiDi (1.65 fails on ESR 153: pyproject pins 1.64.1).
                return p.firefox.launch(
                    headless=headless,
                    channel="moz-firefox",
                    executable_path=str(SYSTEM_FIREFOX),
                    firefox_user_prefs=FIREFOX_PREFS,
                )
            return p.firefox.launch(headless=headless, firefox_user_prefs=FIREFOX_PREFS)
        if engine == "webkit":
            # Playwright's WebKit has no fake-media switch; its getUserMedia is fake headless.
            return p.webkit.launch(headless=headless)
    except Error as error:
        if _missing_executable(error):
            first_line = str(error).strip().splitlines()[0]
            raise EngineUnavailable(f"{engine} not installed here: {first_line}") from error
        raise
    raise ValueError(f"unknown engine {engine!r}")


def device_args(p: Playwright, engine: str, device: str | None) -> dict[str, Any]:
    """Return new_context() options emulating `device` (None = desktop) in `engine`."""
    if device is None:
        return {"viewport": {"width": 1280, "height": 800}}
    args = dict(p.devices[device])
    args.pop("default_browser_type", None)
    if engine == "firefox":
        # Firefox rejects mobile emulation; the viewport and pixel ratio are what layout needs.
        args.pop("is_mobile", None)
        args.pop("has_touch", None)
    return args


# Headers for a test's own API requests (`context.request`). Playwright keeps their idle
# connections with no time limit and does not retry a request whose reused connection the server
# closed. gunicorn closes an idle connection after 5 s (`keepalive`); a request that reaches a busy
# worker as that timer fires is reset (CI once: "socket hang up (ECONNRESET)" on POST
# /api/groups; here 3 resets in 3 with the worker stopped across the 5 s, 0 in 3 with this
# header). So each such request takes a connection of its own. Browsers retry such a request.
OWN_CONNECTION = {"Connection": "close"}


def new_context(browser: Browser, engine: str, **options: Any) -> BrowserContext:
    """Open a context for one person: own cookie jar, local-CA HTTPS accepted, media allowed."""
    context = browser.new_context(ignore_https_errors=True, **options)
    try:
        context.grant_permissions(["camera", "microphone"])
    except Error:
        # Firefox (BiDi) and WebKit do not know these permission names; their prefs or
        # fake-media defaults already allow getUserMedia.
        pass
    return context


# How long a close may take before the browser is taken for hung. Closing a context can wait
# forever on a renderer that never acknowledges it (seen once each in CI and here, as a test
# timing out in teardown): a browser bug, not the app's, and it must not cost the run.
CLOSE_GRACE = 60.0
_BROWSER_EXECUTABLES = ("chromium", "firefox-esr", "firefox")


def _descendants(root: int) -> list[int]:
    """Return the pids of every process below `root` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the ppid follows the last ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_browsers() -> list[int]:
    """SIGKILL every browser process this test run started; return their pids."""
    killed = []
    for pid in _descendants(os.getpid()):
        try:
            exe = Path(os.readlink(f"/proc/{pid}/exe")).name
        except OSError:
            continue
        if exe in _BROWSER_EXECUTABLES:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


def close_surely(target: BrowserContext | Browser, grace: float = CLOSE_GRACE) -> None:
    """Close a context or browser; if that hangs past `grace`, kill the browsers and say so.

    Killing the browser makes Playwright fail the pending close, which ends the wait; the suite's
    `browsers` fixture launches a fresh one for the next test.
    """
    closed = threading.Event()
    killed: list[int] = []

    def watchdog() -> None:
        if not closed.wait(grace):
            killed.extend(_kill_browsers())

    threading.Thread(target=watchdog, name="close-watchdog", daemon=True).start()
    try:
        target.close()
    except Error:
        if not killed:
            raise
    finally:
        closed.set()
    if killed:
        # Said, not raised: the suite treats warnings as errors, and the hang is the browser's.
        print(
            f"closing {target!r} hung for {grace:.0f} s; killed browser processes {killed}",
            file=sys.stderr,
        )


T = TypeVar("T")


def off_the_loop(job: Callable[[], T]) -> T:
    """Run `job` (which starts Playwright's sync API itself) in a thread of its own.

    The sync API refuses a thread whose asyncio loop is running, and e2e/conftest.py's session
    Playwright leaves one running in the main thread of a pytest worker that has run browser
    tests; a tests/ module that lands on that worker later would fail without this.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(job).result()
