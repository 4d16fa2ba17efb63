"""A PulseAudio server of the test's own with speakers that play into nothing, and Firefox on it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright

from harness.browsers import FIREFOX_PREFS, SYSTEM_FIREFOX
from harness.calls import wait_until


@contextmanager
def pulse_speakers(home: Path, *names: str) -> Iterator[str]:
    """Run PulseAudio with a null speaker per name (one word: its label); yield its address."""
    if not shutil.which("pulseaudio"):
        pytest.skip("pulseaudio is not installed (make system-deps installs it)")
    address = f"unix:{home / 'native'}"
    # Its own home and runtime folder: nothing of a desktop session is read or written.
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home)}
    sinks = [
        f"--load=module-null-sink sink_name=speaker{i} sink_properties=device.description={name}"
        for i, name in enumerate(names)
    ]
    command = ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
               f"--load=module-native-protocol-unix socket={home / 'native'} auth-anonymous=1",
               *sinks]  # fmt: skip
    with (home / "pulseaudio.log").open("ab") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:

        def ready() -> bool:
            probe = {**env, "PULSE_SERVER": address}
            info = subprocess.run(["pactl", "info"], env=probe, capture_output=True, check=False)
            return info.returncode == 0

        wait_until(lambda: server.poll() is None and ready(), "pulseaudio did not start", 30)
        yield address
    finally:
        server.terminate()
        server.wait(timeout=10)


def firefox_on(playwright: Playwright, address: str) -> Browser:
    """Launch Firefox as harness/browsers.launch does, its sound going to `address`."""
    system = {"channel": "moz-firefox", "executable_path": str(SYSTEM_FIREFOX)}
    return playwright.firefox.launch(
        firefox_user_prefs=FIREFOX_PREFS,
        env={**os.environ, "PULSE_SERVER": address},
        **(system if SYSTEM_FIREFOX.exists() else {}),  # type: ignore[arg-type]
    )
