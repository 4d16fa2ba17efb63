"""The local CA and server certificate from `flask --app backend certs`, over real TLS."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from flask.testing import FlaskClient

from backend.cli import make_certificates


def test_server_certificate_covers_local_names_and_chains_to_the_ca(tmp_path: Path) -> None:
    names = make_certificates(tmp_path, ("parley.test",))
    assert {"localhost", "127.0.0.1", "::1", socket.gethostname(), "parley.test"} <= set(names)
    cert = x509.load_pem_x509_certificate((tmp_path / "server.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    ips = san.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("127.0.0.1") in ips
    assert ipaddress.ip_address("::1") in ips
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600

    # A real TLS handshake on loopback, verified against the CA alone.
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.recv(2) == b"ok"
    thread.join(5)
    listener.close()


def test_a_second_run_keeps_the_ca_so_phones_stay_trusted(tmp_path: Path) -> None:
    make_certificates(tmp_path)
    ca = (tmp_path / "ca.crt").read_bytes()
    first_server = (tmp_path / "server.crt").read_bytes()
    make_certificates(tmp_path)
    assert (tmp_path / "ca.crt").read_bytes() == ca
    assert (tmp_path / "server.crt").read_bytes() != first_server


def test_ca_certificate_is_offered_for_download(client: FlaskClient, app) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/ca.crt").status_code == 404
    make_certificates(Path(app.config["CERTS_DIR"]))
    with client.get("/ca.crt") as r:
        assert r.status_code == 200
        assert r.mimetype == "application/x-x509-ca-cert"
        assert r.data.startswith(b"-----BEGIN CERTIFICATE-----")
        assert b"PRIVATE KEY" not in r.data
