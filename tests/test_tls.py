"""The TLS listener: handshakes that fail or never finish cost nothing and print nothing."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from harness.servers import make_test_certs, parley_server


def test_clients_that_fail_or_stall_the_tls_handshake_are_dropped_quietly(tmp_path: Path) -> None:
    certs = make_test_certs(tmp_path / "certs")
    with parley_server(tmp_path / "web", certs, TLS_HANDSHAKE_TIMEOUT="1") as server:
        # Connects and says nothing: the server hangs up once the handshake's time is up.
        silent = socket.create_connection(("127.0.0.1", server.port))
        silent.settimeout(60)  # far past the 1 s allowed: a slow machine still gets there
        # Goes away mid-handshake, as a phone losing signal or a port probe does.
        socket.create_connection(("127.0.0.1", server.port)).close()
        # Speaks plain HTTP to the TLS port.
        with socket.create_connection(("127.0.0.1", server.port)) as plain:
            plain.sendall(b"GET /api/me HTTP/1.1\r\nHost: localhost\r\n\r\n")
            plain.settimeout(60)
            try:
                while plain.recv(4096):
                    pass
            except ConnectionResetError:
                pass  # hung up with our request unread: ended all the same
        try:
            assert silent.recv(1) == b"", "the server kept a silent client's connection"
        finally:
            silent.close()
        # Everyone else is served as before.
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        try:
            urllib.request.urlopen(f"{server.url}/api/me", context=context, timeout=30)
        except urllib.error.HTTPError as answer:
            assert answer.code == 401
        server.stop()
        log = server.log.read_text() if server.log else ""
        assert "Traceback" not in log and "SSLError" not in log, log
