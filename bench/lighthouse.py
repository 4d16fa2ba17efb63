"""Lighthouse mobile run against a local Parley (HTTPS with the test CA), scores and key metrics.

    npm install --prefix bench/.lighthouse lighthouse@13.5.0   # once
    .venv/bin/python bench/lighthouse.py [--repeats 3]

Starts a Parley server on a free loopback port and runs Lighthouse's default mobile profile
(simulated throttling: 150 ms RTT, 1.6 Mbit/s, 4x CPU) on the sign-in page with
CHROME_PATH=/usr/bin/chromium, headless. Prints a Markdown table of category scores and the
main metrics (median, min-max over repeats) and the failed audits of the last run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.signaling import spread  # noqa: E402
from harness.servers import make_test_certs, parley_server  # noqa: E402

LIGHTHOUSE = ROOT / "bench" / ".lighthouse" / "node_modules" / ".bin" / "lighthouse"
METRICS = {
    "first-contentful-paint": "FCP (s)",
    "largest-contentful-paint": "LCP (s)",
    "total-blocking-time": "TBT (ms)",
    "cumulative-layout-shift": "CLS",
    "speed-index": "Speed Index (s)",
}


def run_once(url: str, out: Path) -> dict[str, object]:
    flags = "--headless=new --no-sandbox --ignore-certificate-errors --disable-gpu"
    categories = "performance,accessibility,best-practices,seo"
    subprocess.run(
        [str(LIGHTHOUSE), url, "--quiet", "--output=json", f"--output-path={out}",
         f"--chrome-flags={flags}", f"--only-categories={categories}"],
        env={**os.environ, "CHROME_PATH": "/usr/bin/chromium"},
        check=True,
        timeout=300,
    )  # fmt: skip
    report: dict[str, object] = json.loads(out.read_text())
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not LIGHTHOUSE.exists():
        raise SystemExit(f"install Lighthouse first: {__doc__.splitlines()[2].strip()}")
    work = Path(tempfile.mkdtemp(prefix="parley-lh-"))
    reports = []
    with parley_server(work, make_test_certs(work / "certs")) as server:
        for n in range(args.repeats):
            reports.append(run_once(server.url + "/", work / f"report-{n}.json"))
    scores: dict[str, list[float]] = {}
    for report in reports:
        for category in report["categories"].values():  # type: ignore[attr-defined]
            scores.setdefault(category["title"], []).append(100 * (category["score"] or 0))
        for audit, title in METRICS.items():
            value = report["audits"][audit]["numericValue"]  # type: ignore[index]
            if "(s)" in title:
                value /= 1000
            scores.setdefault(title, []).append(value)

    print(f"Lighthouse {reports[-1]['lighthouseVersion']}, mobile, n={len(reports)}\n")
    print("| " + " | ".join(scores) + " |")
    print("|" + "---|" * len(scores))
    print("| " + " | ".join(spread(v, 2 if max(v) < 10 else 0) for v in scores.values()) + " |")
    failed = [
        f"{a['id']}: {a['title']}"
        for a in reports[-1]["audits"].values()  # type: ignore[attr-defined]
        if a.get("score") is not None and a["score"] < 0.9 and a["scoreDisplayMode"] == "binary"
    ]
    print("\nFailed audits (last run):", *failed or ["none"], sep="\n- ")


if __name__ == "__main__":
    main()
