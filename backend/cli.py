"""Flask commands: `certs` makes a local CA and server certificate, `protocol-js` writes wire.js."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import subprocess
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from flask import Flask, current_app

from .signaling import wirejs

CA_DAYS = 3650
# Apple platforms refuse server certificates valid for more than 825 days.
SERVER_DAYS = 825


def local_addresses() -> list[str]:
    """Return this machine's non-loopback interface addresses (read locally, nothing is sent)."""
    found: set[str] = set()
    try:
        out = subprocess.run(
            ["ip", "-j", "addr"], capture_output=True, text=True, timeout=5, check=True
        ).stdout
        for iface in json.loads(out):
            for info in iface.get("addr_info", []):
                found.add(info["local"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        try:
            for info in socket.getaddrinfo(socket.gethostname(), None):
                found.add(str(info[4][0]))
        except OSError:
            pass
    keep = []
    for raw in found:
        try:
            addr = ipaddress.ip_address(raw.split("%")[0])
        except ValueError:
            continue
        if not (addr.is_loopback or addr.is_link_local or addr.is_multicast):
            keep.append(str(addr))
    return sorted(keep)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Parley local development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _load_or_make_ca(certs: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_crt, ca_key = certs / "ca.crt", certs / "ca.key"
    if ca_crt.exists() and ca_key.exists():
        key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(ca_crt.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name(f"Parley local CA ({socket.gethostname()})")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(ca_key, key)
    ca_crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def make_certificates(certs: Path, extra_names: tuple[str, ...] = ()) -> list[str]:
    """Create (or reuse) the CA and issue a fresh server certificate; return its names."""
    certs.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _load_or_make_ca(certs)
    hostname = socket.gethostname()
    dns = sorted({"localhost", hostname, f"{hostname}.local", *extra_names})
    ips = sorted({"127.0.0.1", "::1", *local_addresses()})
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(certs / "server.key", key)
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
        serialization.Encoding.PEM
    )
    (certs / "server.crt").write_bytes(chain)
    return dns + ips


@click.command("certs")
@click.option("--name", "names", multiple=True, help="Extra DNS name for the server certificate.")
@click.option("--if-missing", is_flag=True, help="Do nothing when a server certificate exists.")
def certs_command(names: tuple[str, ...], if_missing: bool) -> None:
    """Create the local CA and a server certificate under certs/."""
    certs = Path(current_app.config["CERTS_DIR"])
    if if_missing and (certs / "server.crt").exists() and (certs / "server.key").exists():
        click.echo(f"certificates already in {certs}")
        return
    made = make_certificates(certs, names)
    click.echo(f"local CA: {certs / 'ca.crt'}; server certificate for: {', '.join(made)}")


@click.command("protocol-js")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the file is stale.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=wirejs.WIRE_JS,
    show_default="pwa/js/wire.js",
    help="The file to write or check.",
)
def protocol_js_command(check: bool, output: Path) -> None:
    """Write pwa/js/wire.js (the browser's wire format) from backend/signaling/protocol.py."""
    text = wirejs.render()
    if check:
        if wirejs.stale(output, text):
            raise click.ClickException(
                f"{output} is stale: backend/signaling/protocol.py changed since it was generated."
                " Run `flask --app backend protocol-js` and commit the result."
            )
        click.echo(f"{output} matches backend/signaling/protocol.py")
        return
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}")


def init_app(app: Flask) -> None:
    """Register Parley's flask commands."""
    app.cli.add_command(certs_command)
    app.cli.add_command(protocol_js_command)
