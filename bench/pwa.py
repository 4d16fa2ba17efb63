"""The PWA's weight and load time: app-shell bytes, and cold vs warm loads on a throttled phone.

    .venv/bin/python bench/pwa.py [--repeats 5]

Bytes: every file the service worker caches, raw and gzip (level 9; brotli when the `brotli`
module is installed). Load: Chromium with DevTools throttling like Lighthouse's mobile profile
(150 ms RTT, 1.6 Mbit/s down, 750 kbit/s up, CPU slowed 4x), time to the sign-in form, first visit
(cold, empty profile) and a repeat visit served by the service worker (warm).
"""

from __future__ import annotations

import argparse
import gzip
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from harness.browsers import CHROMIUM_ARGS, SYSTEM_CHROMIUM  # noqa: E402
from harness.servers import make_test_certs, parley_server  # noqa: E402

PWA = ROOT / "pwa"


def shell_files() -> list[Path]:
    listed = re.findall(r'"(/[^"]*)"', (PWA / "sw.js").read_text().split("];")[0])
    files = [PWA / ("index.html" if a == "/" else a.lstrip("/")) for a in listed]
    return sorted(set(files + [PWA / "sw.js"]))


def sizes() -> str:
    try:
        import brotli  # type: ignore[import-not-found]
    except ImportError:
        brotli = None
    rows = ["| part | files | raw | gzip -9 | brotli |", "|---|---|---|---|---|"]
    groups = {
        "code (html, css, js)": [
            f for f in shell_files() if f.suffix in {".html", ".css", ".js", ".webmanifest"}
        ],
        "icons": [f for f in shell_files() if f.suffix == ".png"],
    }
    for name, files in groups.items():
        raw = sum(f.stat().st_size for f in files)
        gz = sum(len(gzip.compress(f.read_bytes(), 9)) for f in files)
        br = sum(len(brotli.compress(f.read_bytes())) for f in files) if brotli else None
        rows.append(
            f"| {name} | {len(files)} | {raw / 1024:.1f} KB | {gz / 1024:.1f} KB | "
            f"{f'{br / 1024:.1f} KB' if br is not None else 'not installed'} |"
        )
    return "\n".join(rows)


def load_times(url: str, repeats: int) -> tuple[list[float], list[float]]:
    cold: list[float] = []
    warm: list[float] = []
    kwargs = {"executable_path": str(SYSTEM_CHROMIUM)} if SYSTEM_CHROMIUM.exists() else {}
    with sync_playwright() as p:
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as profile:
                context = p.chromium.launch_persistent_context(
                    profile,
                    headless=True,
                    args=[*CHROMIUM_ARGS, "--ignore-certificate-errors"],
                    ignore_https_errors=True,
                    **kwargs,  # type: ignore[arg-type]
                )
                page = context.pages[0]
                cdp = context.new_cdp_session(page)
                cdp.send("Network.enable")
                cdp.send(
                    "Network.emulateNetworkConditions",
                    {
                        "offline": False,
                        "latency": 150,
                        "downloadThroughput": 1.6 * 1024 * 1024 / 8,
                        "uploadThroughput": 750 * 1024 / 8,
                    },
                )
                cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
                for bucket in (cold, warm):
                    started = time.perf_counter()
                    page.goto(url)
                    page.get_by_role("button", name="Sign in").wait_for()
                    bucket.append(time.perf_counter() - started)
                    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
                context.close()
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(sizes())
    root = Path(tempfile.mkdtemp(prefix="parley-pwa-bench-"))
    with parley_server(root, make_test_certs(root / "certs")) as server:
        cold, warm = load_times(server.url, args.repeats)
    print()
    print("| load (throttled mobile) | median | min-max |")
    print("|---|---|---|")
    for name, values in (("cold (first visit)", cold), ("warm (service worker)", warm)):
        low, mid, high = min(values), statistics.median(values), max(values)
        print(f"| {name} | {mid:.2f} s | {low:.2f}-{high:.2f} s |")


if __name__ == "__main__":
    main()
