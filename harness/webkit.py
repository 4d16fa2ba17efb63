"""WebKit for the e2e suite: Debian's WebKitGTK MiniBrowser under Xvfb, driven by Selenium.

Playwright's own WebKit cannot be installed here (it needs its CDN); Debian's `webkit2gtk-driver`
gives `WebKitWebDriver`, a W3C WebDriver for WebKitGTK. That build has no WebRTC (README, WebKit),
so these sessions cover everything but calls.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait
from selenium.webdriver.webkitgtk.options import Options
from selenium.webdriver.webkitgtk.service import Service

from harness.people import PASSWORD
from harness.servers import ParleyServer, free_port

WEBKIT_DRIVER = Path("/usr/bin/WebKitWebDriver")
MINIBROWSER = Path("/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser")
# Only flags MiniBrowser knows (`MiniBrowser --help-all`): an unknown one hangs session creation.
MINIBROWSER_ARGS = [
    "--automation",
    # No toolbar: without it the window can be phone-narrow (the toolbar holds it at 447 px or more)
    # and the page gets the whole window.
    "--full-screen",
    "--enable-media-stream=true",
    "--enable-mock-capture-devices=true",
    "--enable-webrtc=true",  # a no-op in Debian's build, kept so a build with WebRTC would use it
]
# Generous: a 2-core CI machine running the whole suite is slow to start a web process.
WAIT = 45.0
IPHONE = (390, 844)

T = TypeVar("T")


def missing() -> str | None:
    """Say what is missing to run WebKitGTK here, or None when everything is installed."""
    needs = {"webkit2gtk-driver": WEBKIT_DRIVER, "MiniBrowser (webkit2gtk-driver)": MINIBROWSER}
    absent = [name for name, path in needs.items() if not path.exists()]
    if not shutil.which("Xvfb"):
        absent.append("xvfb")
    return f"WebKitGTK not installed here: apt-get install {' '.join(absent)}" if absent else None


@pytest.fixture(scope="session")
def x_display() -> Iterator[str]:
    """One Xvfb for the session on a display number it picks itself (-displayfd)."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as numbers:
        number = numbers.readline().strip()  # written once the display accepts clients
    assert number, "Xvfb did not report a display"
    yield f":{number}"
    xvfb.terminate()
    xvfb.wait(10)


@dataclass
class WebKitPerson:
    """One person in their own MiniBrowser session (own cookie jar and storage)."""

    username: str
    driver: webdriver.WebKitGTK
    server: ParleyServer

    def wait(self, condition: Callable[[webdriver.WebKitGTK], T], timeout: float = WAIT) -> T:
        """Poll `condition` until it returns something truthy; fail with the page's text if not."""
        try:
            return WebDriverWait(
                self.driver, timeout, ignored_exceptions=(StaleElementReferenceException,)
            ).until(condition)
        except Exception as error:
            body = self.driver.execute_script("return document.body.innerText")
            raise AssertionError(f"{error!r}; the page says:\n{body}") from None

    def find(self, css: str) -> list[WebElement]:
        return self.driver.find_elements("css selector", css)

    def button(self, name: str) -> WebElement:
        """Wait for the visible button named `name` (aria-label, else text) and return it."""
        q = _quote(name)
        return self.wait(
            lambda d: _visible(d, f"//button[@aria-label={q} or normalize-space()={q}]")
        )

    def textbox(self, label: str) -> WebElement:
        """Wait for the visible input or text area inside the label reading `label`."""
        inside = "//*[self::input or self::textarea]"
        xpath = f"//label[contains(normalize-space(), {_quote(label)})]{inside}"
        return self.wait(lambda d: _visible(d, xpath))

    def sees(self, css: str, text: str, timeout: float = WAIT) -> WebElement:
        """Wait until a visible element matching `css` contains `text`, and return it."""

        def shown(_: object) -> WebElement | None:
            for el in self.find(css):
                # innerText, not WebDriver's text: WebKitGTK's atom drops grid cells that clip
                # (a room row's name and preview) though they are on screen.
                if text in (el.get_property("innerText") or "") and el.is_displayed():
                    return el
            return None

        return self.wait(shown, timeout)

    def fill(self, label: str, text: str) -> None:
        box = self.textbox(label)
        box.clear()
        box.send_keys(text)

    def sign_up(self) -> None:
        """Create the account through the sign-in form, as a person would."""
        self.driver.get(self.server.url + "/")
        self.fill("Username", self.username)
        self.fill("Password", PASSWORD)
        self.button("Create account").click()
        self.button("Sign out")

    def open_chat_with(self, username: str) -> None:
        self.fill("New chat", username)
        self.button("Open chat").click()
        self.textbox("Message")

    def send(self, text: str) -> None:
        self.fill("Message", text)
        self.button("Send").click()

    def script(self, source: str) -> object:
        """Run an async function body in the page and return what it resolves to."""
        return self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            f"(async () => {{ {source} }})().then(done, (e) => done('error: ' + e));"
        )


def _quote(text: str) -> str:
    return f'"{text}"' if '"' not in text else f"'{text}'"


def _visible(driver: webdriver.WebKitGTK, xpath: str) -> WebElement | None:
    return next((el for el in driver.find_elements("xpath", xpath) if el.is_displayed()), None)


def start_session(display: str, size: tuple[int, int] = (1280, 800)) -> webdriver.WebKitGTK:
    """Open a MiniBrowser session trusting the test server's local CA, with a window of `size`."""
    options = Options()
    options.binary_location = str(MINIBROWSER)
    for arg in MINIBROWSER_ARGS:
        options.add_argument(arg)
    # WebKitGTK's automation session takes this for pages, sockets and the service worker alike;
    # it has no way to be handed a CA file.
    options.set_capability("acceptInsecureCerts", True)
    service = Service(
        executable_path=str(WEBKIT_DRIVER),
        port=free_port(),
        env={**os.environ, "DISPLAY": display},
    )
    driver = webdriver.WebKitGTK(options=options, service=service)
    driver.set_page_load_timeout(90)
    driver.set_script_timeout(60)
    driver.set_window_size(*size)
    return driver


@pytest.fixture
def webkit_person(x_display: str, server: ParleyServer) -> Iterator[Callable[..., WebKitPerson]]:
    """Make people in WebKit: each a MiniBrowser session of their own, closed after the test."""
    drivers: list[webdriver.WebKitGTK] = []

    def make(
        username: str, sign_up: bool = True, size: tuple[int, int] = (1280, 800)
    ) -> WebKitPerson:
        driver = start_session(x_display, size)
        drivers.append(driver)
        person = WebKitPerson(username, driver, server)
        if sign_up:
            person.sign_up()
        return person

    yield make
    for driver in drivers:
        try:
            driver.quit()
        except WebDriverException:
            pass  # the browser already went away; nothing left to close
