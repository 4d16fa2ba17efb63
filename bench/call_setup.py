"""Call setup time in real browsers: caller's tap -> callee rings, Accept -> first remote frame.

    .venv/bin/python bench/call_setup.py [--calls 20] [--engines chromium,firefox]

Two people in one browser (two contexts, fake media) on a Parley over HTTPS on loopback; each call
is placed, accepted, measured and hung up. Times come from the pages' own clocks (Date.now(), one
machine): ring = the callee's `incoming` event minus the caller's tap; media = the caller's first
decoded remote video frame minus the callee's tap on Accept.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from harness.browsers import launch, new_context  # noqa: E402
from harness.servers import free_port, make_test_certs, parley_server  # noqa: E402

TAP = """(name) => {
  const t = Date.now();
  [...document.querySelectorAll("button")].find((b) => b.textContent === name).click();
  return t;
}"""
FIRST_FRAME = """() => new Promise((resolve) => {
  const timer = setInterval(async () => {
    const s = await window.parley.calls.stats();
    if (s && s.video.framesDecoded > 0) { clearInterval(timer); resolve(Date.now()); }
  }, 5);
})"""


def sign_up(page: Page, url: str, name: str) -> None:
    page.goto(url)
    page.get_by_role("textbox", name="Username").fill(name)
    page.get_by_role("textbox", name="Password").fill("bench password")
    page.get_by_role("button", name="Create account").click()
    page.get_by_role("textbox", name="New chat").wait_for()


def measure(engine: str, url: str, calls: int) -> tuple[list[float], list[float]]:
    ring: list[float] = []
    media: list[float] = []
    with sync_playwright() as p:
        browser = launch(p, engine)
        a = new_context(browser, engine).new_page()
        b = new_context(browser, engine).new_page()
        sign_up(a, url, f"{engine}caller")
        sign_up(b, url, f"{engine}callee")
        a.get_by_role("textbox", name="New chat").fill(f"{engine}callee")
        a.get_by_role("button", name="Open chat").click()
        b.get_by_role("link", name=f"{engine}caller").click()
        b.evaluate(
            "() => window.parley.calls.addEventListener("
            "'incoming', () => { window.rang = Date.now(); })"
        )
        for _ in range(calls):
            b.evaluate("() => { window.rang = 0; }")
            tapped = a.evaluate(TAP, "Video call")
            b.wait_for_function("() => window.rang > 0")
            ring.append(b.evaluate("() => window.rang") - tapped)
            accepted = b.evaluate(TAP, "Accept")
            first = a.evaluate(FIRST_FRAME)
            media.append(first - accepted)
            a.get_by_role("button", name="End call").click()
            a.wait_for_function("() => window.parley.calls.call === null")
            b.wait_for_function("() => window.parley.calls.call === null")
        browser.close()
    return ring, media


def measure_floor(engine: str, calls: int) -> tuple[list[float], list[float]]:
    """The same two steps between two bare pages on bench/floor_relay.py (plain http://127.0.0.1)."""
    port = free_port()
    relay = subprocess.Popen([sys.executable, str(ROOT / "bench" / "floor_relay.py"), str(port)])
    ring: list[float] = []
    media: list[float] = []
    try:
        time.sleep(1)
        with sync_playwright() as p:
            browser = launch(p, engine)
            a = new_context(browser, engine).new_page()
            b = new_context(browser, engine).new_page()
            a.goto(f"http://127.0.0.1:{port}/?user=1")
            b.goto(f"http://127.0.0.1:{port}/?user=2")
            for page in (a, b):
                page.evaluate("() => window.ready")
            for _ in range(calls):
                tapped = a.evaluate("() => window.call(2)")
                b.wait_for_function("() => window.rang > 0")
                ring.append(b.evaluate("() => window.rang") - tapped)
                accepted = b.evaluate("() => window.accept()")
                media.append(a.evaluate("() => window.firstFrame()") - accepted)
                a.evaluate("() => window.hangUp(2)")
                time.sleep(0.3)
            browser.close()
    finally:
        relay.terminate()
        relay.wait(5)
    return ring, media


def row(name: str, values: list[float]) -> str:
    return (
        f"| {name} | {statistics.median(values):.0f} ms | {min(values):.0f}-{max(values):.0f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--engines", default="chromium,firefox")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="parley-setup-bench-"))
    with parley_server(root, make_test_certs(root / "certs")) as server:
        print(f"| step ({args.calls} calls) | median | min-max |")
        print("|---|---|---|")
        for engine in args.engines.split(","):
            ring, media = measure(engine, server.url, args.calls)
            print(row(f"Parley, {engine}: tap -> callee rings", ring), flush=True)
            print(row(f"Parley, {engine}: Accept -> first remote frame", media), flush=True)
            ring, media = measure_floor(engine, args.calls)
            print(row(f"bare floor, {engine}: tap -> callee gets the offer", ring), flush=True)
            print(row(f"bare floor, {engine}: accept -> first remote frame", media), flush=True)


if __name__ == "__main__":
    main()
