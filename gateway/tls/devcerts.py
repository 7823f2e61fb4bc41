"""Local development certificates: a private CA and a ``localhost`` leaf.

``gateway --dev-tls`` needs a certificate that browsers and clients can be taught to trust
once. A fresh self-signed certificate per run would have to be trusted again every time, so the
CA is made once and kept on disk, and only the short-lived leaf is re-issued from it.

Lifetimes follow mkcert, whose certificates browsers already accept: the CA lasts ten years (a
CA made by an older gateway with trustme's year-3000 expiry is kept, since users trusted it),
the leaf stays under the 825 days Apple platforms accept, and both are replaced a month before
they expire, so a server started just before then does not outlive its certificate.

Guarantees: private keys are never readable by other users, not even briefly (they are created
with mode 0600); every file is replaced atomically, so an interrupted run leaves either the old
file or the new one; a file that is missing, unparsable or mismatched is regenerated, never used.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import re
import secrets
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..config import ConfigError

_ORGANIZATION = "gateway development CA"
_FIXED_LEAF_NAMES = ("localhost", "*.localhost", "127.0.0.1", "::1")
_HOSTNAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*")
_CA_LIFETIME = datetime.timedelta(days=3652)  # ten years, leap days included
# Apple platforms reject TLS server certificates valid for more than 825 days, even when they
# chain to a CA the user trusts. The backdate counts: this is the whole validity period.
_LEAF_LIFETIME = datetime.timedelta(days=820)
# Tolerates a client clock running slightly behind the machine that issued a certificate.
_BACKDATE = datetime.timedelta(days=1)
# The server loads its certificate once at start; a month covers any development session.
_RENEW_BEFORE_EXPIRY = datetime.timedelta(days=30)
_PARSE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm)
_IssuerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class DevCertificates:
    """Where the development CA and the ``localhost`` certificate live.

    ``cert`` holds the leaf followed by the CA certificate, so it can be passed as-is to
    ``SSLContext.load_cert_chain(cert, key)``; clients trust ``ca_cert``.
    """

    directory: Path
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


class DevCertificateError(ConfigError):
    """The development certificates could not be read or written where the user asked."""


def dev_certificate_paths(directory: str | os.PathLike[str]) -> DevCertificates:
    """Where the files are, whether or not they exist yet."""
    path = Path(directory)
    return DevCertificates(
        directory=path,
        ca_cert=path / "ca.pem",
        ca_key=path / "ca-key.pem",
        cert=path / "localhost.pem",
        key=path / "localhost-key.pem",
    )


def leaf_names() -> list[str]:
    """The names the ``localhost`` certificate must cover on this machine.

    The machine's own hostname is included so that other devices on a LAN, and containers
    reaching the host by name, can use the same certificate; a hostname that is not a valid
    DNS name is left out rather than put in a certificate clients would reject.
    """
    names = list(_FIXED_LEAF_NAMES)
    hostname = socket.gethostname().strip().rstrip(".").lower()
    try:
        names.append(str(ipaddress.ip_address(hostname)))
    except ValueError:
        if len(hostname) <= 253 and _HOSTNAME.fullmatch(hostname):
            names.append(hostname)
    return list(dict.fromkeys(names))


def ensure_dev_certificates(directory: str | os.PathLike[str]) -> tuple[DevCertificates, bool]:
    """Return usable development certificates in ``directory``, creating what is missing.

    The second value is True when anything was written. A usable leaf is reused; otherwise the
    leaf is re-issued from the stored CA, so browsers that already trust the CA keep working.
    Only a missing, broken or expiring CA is replaced, which means users must trust the new one.
    """
    certs = dev_certificate_paths(directory)
    path = certs.directory
    now = datetime.datetime.now(datetime.timezone.utc)
    names = leaf_names()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        ca = _load_ca(certs, now)
        if ca is not None and _leaf_is_usable(certs, ca[0], names, now):
            return certs, False
        if ca is None:
            ca = _new_ca(now)
            # Key before certificate: if interrupted in between, the pair no longer matches
            # and the next run starts over instead of using a half-replaced CA.
            _write_atomically(certs.ca_key, _private_pem(ca[1]), 0o600)
            _write_atomically(certs.ca_cert, ca[0].public_bytes(Encoding.PEM), 0o644)
        leaf, leaf_key = _new_leaf(*ca, names, now)
        _write_atomically(certs.key, _private_pem(leaf_key), 0o600)
        chain = leaf.public_bytes(Encoding.PEM) + ca[0].public_bytes(Encoding.PEM)
        _write_atomically(certs.cert, chain, 0o644)
    except OSError as exc:
        reason = "it exists and is not a directory" if isinstance(exc, FileExistsError) else None
        raise DevCertificateError(
            f"cannot write development certificates to '{os.fspath(directory)}': "
            f"{reason or exc.strerror or exc}; choose a writable directory"
        ) from exc
    return certs, True


def trust_instructions(certs: DevCertificates, url: str = "https://localhost:8000") -> str:
    """Explain how to make clients trust the development CA, with commands ready to paste."""
    ca = shlex.quote(str(certs.ca_cert.absolute()))
    ca_key = certs.ca_key.absolute()
    directory = shlex.quote(str(certs.directory))
    return "\n".join(
        [
            f"Development TLS certificates for {', '.join(leaf_names())} are in "
            f"{certs.directory.absolute()}",
            "Clients must trust the local CA that signed them:",
            f"  CA certificate: {ca}",
            "",
            f"  this machine: gateway certs --install --certs-dir {directory}",
            "            (Chromium and Firefox; as root also the system store, which curl uses;",
            "            gateway certs --uninstall undoes it)",
            f"  curl:     curl --cacert {ca} {url}",
            f"  Python:   SSL_CERT_FILE={ca} python your_client.py",
            "            (httpx and ssl.create_default_context(); replaces the default CA "
            "bundle for that process)",
            "  Firefox:  Settings > Privacy & Security > Certificates > View Certificates > "
            'Authorities > Import, then tick "Trust this CA to identify websites"',
            "",
            "This CA is for local development only. Its private key is stored unencrypted in",
            f"{ca_key}; anyone who can read it can impersonate any website to a browser that",
            "trusts the CA. Never share or commit that directory, and remove the CA from your",
            "browser when you no longer need it. Delete the directory to start over.",
        ]
    )


def _new_ca(now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    # A distinct, dated unit name tells users which CA in their browser is current.
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
            x509.NameAttribute(
                NameOID.ORGANIZATIONAL_UNIT_NAME,
                f"created {now:%Y-%m-%d} #{secrets.token_hex(4)}",
            ),
        ]
    )
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now - _BACKDATE + _CA_LIFETIME)
        # It signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_leaf(
    ca_cert: x509.Certificate,
    ca_key: _IssuerKey,
    names: list[str],
    now: datetime.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "localhost"),
        ]
    )
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=True,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )
    not_before = now - _BACKDATE
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        # A leaf outliving its CA would be rejected for the CA's expiry anyway.
        .not_valid_after(min(not_before + _LEAF_LIFETIME, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _general_names(names: list[str]) -> list[x509.GeneralName]:
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return general


def _private_pem(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def _load_ca(
    certs: DevCertificates, now: datetime.datetime
) -> tuple[x509.Certificate, _IssuerKey] | None:
    cert_pem = _read(certs.ca_cert)
    key_pem = _read(certs.ca_key)
    if cert_pem is None or key_pem is None:
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = load_pem_private_key(key_pem, password=None)
    except _PARSE_ERRORS:
        return None
    # What gateway and trustme make; a key that cannot sign with SHA-256 is treated as broken.
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        return None
    if not (_is_current(cert, now) and _public_key_der(cert) == _public_key_der(key)):
        return None
    return cert, key


def _leaf_is_usable(
    certs: DevCertificates, ca_cert: x509.Certificate, names: list[str], now: datetime.datetime
) -> bool:
    chain_pem = _read(certs.cert)
    key_pem = _read(certs.key)
    if chain_pem is None or key_pem is None:
        return False
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
        key = load_pem_private_key(key_pem, password=None)
        leaf = chain[0]
        leaf.verify_directly_issued_by(ca_cert)
        present = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (*_PARSE_ERRORS, InvalidSignature, x509.ExtensionNotFound):
        return False
    return (
        chain[1:] == [ca_cert]
        and set(_general_names(names)).issubset(present)
        and _is_current(leaf, now)
        and _public_key_der(leaf) == _public_key_der(key)
    )


def _is_current(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return cert.not_valid_before_utc <= now < cert.not_valid_after_utc - _RENEW_BEFORE_EXPIRY


def _public_key_der(holder: x509.Certificate | PrivateKeyTypes) -> bytes:
    return holder.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        # Replacing a CA we merely cannot read would force the user to trust a new one.
        raise DevCertificateError(
            f"cannot read development certificate '{path}': {exc.strerror or exc}; "
            f"fix its permissions, or delete '{path.parent}' to start over"
        ) from exc


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # The mode is given at creation so a private key is never readable by others, even briefly.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
