"""Development certificates: files on disk, reuse and re-issue, and a real TLS handshake."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID

from gateway.tls.devcerts import (
    DevCertificateError,
    DevCertificates,
    ensure_dev_certificates,
    leaf_names,
    trust_instructions,
)

FILE_NAMES = {"ca.pem", "ca-key.pem", "localhost.pem", "localhost-key.pem"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leaf(certs: DevCertificates) -> x509.Certificate:
    return x509.load_pem_x509_certificates(certs.cert.read_bytes())[0]


def _handshake(certs: DevCertificates, server_hostname: str) -> bytes:
    """Serve one TLS connection on 127.0.0.1 and return what the verifying client received."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certs.cert, certs.key)
    client_context = ssl.create_default_context(cafile=certs.ca_cert)

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def serve() -> None:
            connection, _ = listener.accept()
            connection.settimeout(5)
            # The client may reject the certificate; that is the client's result to report.
            try:
                with server_context.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(b"hello")
            except OSError:
                connection.close()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            port = listener.getsockname()[1]
            with (
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                client_context.wrap_socket(raw, server_hostname=server_hostname) as tls,
            ):
                return tls.recv(5)
        finally:
            thread.join(5)


def test_creates_files_with_private_keys_unreadable_by_others(tmp_path: Path) -> None:
    certs, created = ensure_dev_certificates(tmp_path / "certs")

    assert created
    assert certs.directory == tmp_path / "certs"
    assert {p.name for p in certs.directory.iterdir()} == FILE_NAMES
    if os.name == "posix":
        assert _mode(certs.key) == 0o600
        assert _mode(certs.ca_key) == 0o600
        umask = os.umask(0)
        os.umask(umask)
        assert _mode(certs.cert) == 0o644 & ~umask
        assert _mode(certs.ca_cert) == 0o644 & ~umask


def test_second_call_reuses_files(tmp_path: Path) -> None:
    certs, _ = ensure_dev_certificates(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    again, created = ensure_dev_certificates(tmp_path)

    assert not created
    assert again == certs
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def _ca(certs: DevCertificates) -> x509.Certificate:
    return x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())


def _sans(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def _lifetime(cert: x509.Certificate) -> datetime.timedelta:
    return cert.not_valid_after_utc - cert.not_valid_before_utc


def _store_leaf(certs: DevCertificates, *names: str) -> None:
    """Replace the stored leaf with one from the stored CA that covers only `names`."""
    ca = trustme.CA.from_pem(certs.ca_cert.read_bytes(), certs.ca_key.read_bytes())
    leaf = ca.issue_cert(*names)
    certs.cert.write_bytes(leaf.cert_chain_pems[0].bytes() + ca.cert_pem.bytes())
    certs.key.write_bytes(leaf.private_key_pem.bytes())


def test_leaf_is_signed_by_ca_and_names_localhost_loopback_and_this_machine(tmp_path: Path) -> None:
    certs, _ = ensure_dev_certificates(tmp_path)
    ca = _ca(certs)
    chain = x509.load_pem_x509_certificates(certs.cert.read_bytes())

    chain[0].verify_directly_issued_by(ca)
    assert chain[1:] == [ca]
    names = _sans(chain[0])
    hostname = socket.gethostname().lower()
    dns_names = list(dict.fromkeys(["localhost", "*.localhost", hostname]))
    assert names.get_values_for_type(x509.DNSName) == dns_names
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert leaf_names() == list(dict.fromkeys(["localhost", "*.localhost", "127.0.0.1", "::1",
                                               hostname]))


def test_leaf_lives_under_825_days_and_the_ca_ten_years(tmp_path: Path) -> None:
    certs, _ = ensure_dev_certificates(tmp_path)
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf, ca = _leaf(certs), _ca(certs)

    # Apple platforms refuse server certificates valid for more than 825 days.
    assert _lifetime(leaf) < datetime.timedelta(days=825)
    assert leaf.not_valid_before_utc < now
    assert _lifetime(ca) == datetime.timedelta(days=3652)  # ten years, as mkcert's CA
    assert ca.not_valid_after_utc.year - now.year == 10
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0


def test_a_ca_from_an_older_gateway_without_expiry_is_kept(tmp_path: Path) -> None:
    old = trustme.CA(organization_name="gateway development CA")  # valid until the year 3000
    old.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    old.private_key_pem.write_to_path(str(tmp_path / "ca-key.pem"))

    certs, created = ensure_dev_certificates(tmp_path)

    assert created
    assert certs.ca_cert.read_bytes() == old.cert_pem.bytes()
    assert _lifetime(_leaf(certs)) < datetime.timedelta(days=825)
    assert _handshake(certs, "localhost") == b"hello"


def _store_ca_expiring_in(directory: Path, days: int) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gateway development CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=3000))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        # Python 3.13 verifies strictly (VERIFY_X509_STRICT): a CA must say it signs certificates.
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "ca-key.pem").write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    (directory / "ca.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    return cert


def test_a_leaf_never_outlives_its_ca(tmp_path: Path) -> None:
    ca = _store_ca_expiring_in(tmp_path, 200)

    certs, _ = ensure_dev_certificates(tmp_path)

    assert _ca(certs) == ca
    assert _leaf(certs).not_valid_after_utc == ca.not_valid_after_utc
    assert _handshake(certs, "localhost") == b"hello"


def test_a_ca_within_a_month_of_expiry_is_replaced(tmp_path: Path) -> None:
    old = _store_ca_expiring_in(tmp_path, 20)

    certs, created = ensure_dev_certificates(tmp_path)

    assert created
    assert _ca(certs) != old
    assert _lifetime(_ca(certs)) == datetime.timedelta(days=3652)
    assert _handshake(certs, "localhost") == b"hello"


@pytest.mark.parametrize("server_hostname", ["localhost", "127.0.0.1"])
def test_tls_handshake_verifies_against_ca(tmp_path: Path, server_hostname: str) -> None:
    certs, _ = ensure_dev_certificates(tmp_path)

    assert _handshake(certs, server_hostname) == b"hello"


def test_tls_handshake_rejects_other_names(tmp_path: Path) -> None:
    certs, _ = ensure_dev_certificates(tmp_path)

    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(certs, "example.com")


def test_missing_leaf_is_reissued_from_same_ca(tmp_path: Path) -> None:
    certs, _ = ensure_dev_certificates(tmp_path)
    ca_pem, ca_key_pem = certs.ca_cert.read_bytes(), certs.ca_key.read_bytes()
    certs.cert.unlink()

    _, created = ensure_dev_certificates(tmp_path)

    assert created
    assert certs.ca_cert.read_bytes() == ca_pem
    assert certs.ca_key.read_bytes() == ca_key_pem
    _leaf(certs).verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    assert _handshake(certs, "localhost") == b"hello"


def test_leaf_within_a_month_of_expiry_is_reissued(tmp_path: Path) -> None:
    certs, _ = ensure_dev_certificates(tmp_path)
    ca = trustme.CA.from_pem(certs.ca_cert.read_bytes(), certs.ca_key.read_bytes())
    now = datetime.datetime.now(datetime.timezone.utc)
    expiring = ca.issue_cert(
        "localhost", "127.0.0.1", "::1", not_after=now + datetime.timedelta(days=20)
    )
    certs.cert.write_bytes(expiring.cert_chain_pems[0].bytes() + ca.cert_pem.bytes())
    certs.key.write_bytes(expiring.private_key_pem.bytes())

    _, created = ensure_dev_certificates(tmp_path)

    assert created
    assert _leaf(certs).not_valid_after_utc > now + datetime.timedelta(days=365)


def test_leaf_missing_a_name_is_reissued(tmp_path: Path) -> None:
    certs, _ = ensure_dev_certificates(tmp_path)
    _store_leaf(certs, "localhost")

    _, created = ensure_dev_certificates(tmp_path)

    assert created
    assert _handshake(certs, "127.0.0.1") == b"hello"


def test_leaf_missing_this_machines_name_is_reissued_from_the_same_ca(tmp_path: Path) -> None:
    certs, _ = ensure_dev_certificates(tmp_path)
    ca_pem = certs.ca_cert.read_bytes()
    _store_leaf(certs, "localhost", "*.localhost", "127.0.0.1", "::1")  # as made on another host

    _, created = ensure_dev_certificates(tmp_path)

    assert created
    assert certs.ca_cert.read_bytes() == ca_pem
    hostname = socket.gethostname().lower()
    assert hostname in _sans(_leaf(certs)).get_values_for_type(x509.DNSName)
    assert _handshake(certs, hostname) == b"hello"
    assert ensure_dev_certificates(tmp_path)[1] is False


def test_broken_ca_makes_everything_anew(tmp_path: Path) -> None:
    certs, _ = ensure_dev_certificates(tmp_path)
    old_leaf = certs.cert.read_bytes()
    certs.ca_key.write_bytes(b"not a key")

    _, created = ensure_dev_certificates(tmp_path)

    assert created
    assert certs.cert.read_bytes() != old_leaf
    assert {p.name for p in tmp_path.iterdir()} == FILE_NAMES
    assert _handshake(certs, "localhost") == b"hello"


def test_unwritable_location_raises_readable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "regular-file"
    blocker.write_text("")
    target = blocker / "certs"

    with pytest.raises(DevCertificateError, match="cannot write development certificates") as info:
        ensure_dev_certificates(target)

    assert f"'{target}'" in str(info.value)
    assert "\n" not in str(info.value)


def test_directory_that_is_a_file_raises_readable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "certs"
    blocker.write_text("")

    with pytest.raises(DevCertificateError, match="is not a directory"):
        ensure_dev_certificates(blocker)


def test_trust_instructions_name_the_ca_and_client_settings(tmp_path: Path) -> None:
    certs, _ = ensure_dev_certificates(tmp_path)

    text = trust_instructions(certs, "https://localhost:9443")

    assert str(certs.ca_cert.absolute()) in text
    assert f"curl --cacert {certs.ca_cert.absolute()} https://localhost:9443" in text
    assert f"SSL_CERT_FILE={certs.ca_cert.absolute()}" in text
    assert f"gateway certs --install --certs-dir {tmp_path}" in text
    assert "development only" in text
