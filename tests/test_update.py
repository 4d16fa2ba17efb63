"""Every change to the app reaches installed phones: the served service worker changes with it."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from backend import create_app
from backend.signaling.protocol import PROTOCOL_VERSION
from harness.servers import ROOT, ParleyServer, make_test_certs, parley_server
from harness.wsclient import Person

PWA = ROOT / "pwa"
Serve = Callable[[Path], FlaskClient]


@pytest.fixture
def app_copy(tmp_path: Path) -> Path:
    """A copy of pwa/ that a test may change, as a deploy would."""
    return Path(shutil.copytree(PWA, tmp_path / "pwa"))


@pytest.fixture
def serve(tmp_path: Path) -> Serve:
    """Start Parley (a new app, as a restart would) on a PWA folder; return its test client."""

    def start(pwa_dir: Path) -> FlaskClient:
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "test",
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'test.db'}",
                "PWA_DIR": str(pwa_dir),
            }
        )
        return app.test_client()

    return start


def build_of(client: FlaskClient) -> dict[str, object]:
    """Fetch /sw.js as a browser would and return the build the server filled in."""
    response = client.get("/sw.js")
    assert response.status_code == 200
    match = re.search(r"^const BUILD = (.*);$", response.text, re.MULTILINE)
    assert match, "no BUILD line in the served sw.js"
    build: dict[str, object] = json.loads(match.group(1))
    return build


def test_the_served_worker_caches_every_app_file_and_nothing_else(
    serve: Serve, app_copy: Path
) -> None:
    client = serve(app_copy)
    response = client.get("/sw.js")
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Service-Worker-Allowed"] == "/"
    build = build_of(client)
    files = {f"/{p.relative_to(app_copy).as_posix()}" for p in app_copy.rglob("*") if p.is_file()}
    assert set(build["shell"]) == (files - {"/sw.js"}) | {"/"}  # type: ignore[call-overload]
    for url in build["shell"]:  # type: ignore[attr-defined]
        with client.get(url) as served:  # a streamed file: close it
            assert served.status_code == 200, url
    assert re.fullmatch(r"[0-9a-f]{16}", str(build["version"]))


def test_the_same_files_serve_the_same_worker_byte_for_byte(serve: Serve, app_copy: Path) -> None:
    first, second = serve(app_copy).get("/sw.js"), serve(app_copy).get("/sw.js")
    assert first.data == second.data  # or every restart would offer a needless update
    again = serve(app_copy).get("/sw.js", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


@pytest.mark.parametrize(
    "changed", ["js/main.js", "js/views/dom.js", "css/app.css", "index.html", "icons/icon-192.png"]
)
def test_changing_any_app_file_changes_the_served_worker(
    serve: Serve, app_copy: Path, changed: str
) -> None:
    before = serve(app_copy).get("/sw.js").data
    with (app_copy / changed).open("ab") as file:
        file.write(b"\n")
    after = serve(app_copy).get("/sw.js").data
    assert after != before


def test_a_new_app_file_is_cached_without_editing_sw_js(serve: Serve, app_copy: Path) -> None:
    (app_copy / "js" / "extra.js").write_text("export const extra = 1;\n")
    assert "/js/extra.js" in build_of(serve(app_copy))["shell"]  # type: ignore[operator]


def test_a_worker_without_its_build_line_stops_the_server_at_start(
    serve: Serve, app_copy: Path
) -> None:
    worker = app_copy / "sw.js"
    worker.write_text(re.sub(r"^const BUILD = .*;$", "", worker.read_text(), flags=re.MULTILINE))
    with pytest.raises(RuntimeError, match="BUILD"):
        serve(app_copy)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    root = tmp_path_factory.mktemp("update")
    with parley_server(root, make_test_certs(root / "certs")) as running:
        yield running


def test_welcome_carries_the_servers_protocol_version(server: ParleyServer) -> None:
    alice = Person(server, "alice")
    sock = alice.connect()
    try:
        assert sock.welcome["protocol"] == PROTOCOL_VERSION
    finally:
        sock.close()
        alice.http.close()
