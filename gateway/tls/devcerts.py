"""Local development certificates: a private CA and a ``localhost`` leaf, made with trustme.

``gateway --dev-tls`` needs a certificate that browsers and clients can be taught to trust
once. A fresh self-signed certificate per run would have to be trusted again every time, so the
CA is made once and kept on disk, and only the short-lived leaf is re-issued from it.

Guarantees: private keys are never readable by other users, not even briefly (they are created
with mode 0600); every file is replaced atomically, so an interrupted run leaves either the old
file or the new one; a file that is missing, unparsable or mismatched is regenerated, never used.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from ..config import ConfigError

_ORGANIZATION = "gateway development CA"
_LEAF_NAMES = ("localhost", "127.0.0.1", "::1")
_REQUIRED_SANS = frozenset(
    {
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    }
)
# Apple platforms reject TLS server certificates valid for more than 825 days, even when they
# chain to a CA the user trusts; mkcert uses the same bound.
_LEAF_LIFETIME = datetime.timedelta(days=825)
# Tolerates a client clock running slightly behind the machine that issued the leaf.
_LEAF_BACKDATE = datetime.timedelta(days=1)
_RENEW_BEFORE_EXPIRY = datetime.timedelta(days=7)
_PARSE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm)


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


def ensure_dev_certificates(directory: str | os.PathLike[str]) -> tuple[DevCertificates, bool]:
    """Return usable development certificates in ``directory``, creating what is missing.

    The second value is True when anything was written. A usable leaf is reused; otherwise the
    leaf is re-issued from the stored CA, so browsers that already trust the CA keep working.
    Only a missing or broken CA is replaced, which means users must trust the new one.
    """
    path = Path(directory)
    certs = DevCertificates(
        directory=path,
        ca_cert=path / "ca.pem",
        ca_key=path / "ca-key.pem",
        cert=path / "localhost.pem",
        key=path / "localhost-key.pem",
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        ca = _load_ca(certs, now)
        if ca is not None and _leaf_is_usable(certs, ca, now):
            return certs, False
        if ca is None:
            # A distinct, dated unit name tells users which CA in their browser is current.
            ca = trustme.CA(
                organization_name=_ORGANIZATION,
                organization_unit_name=f"created {now:%Y-%m-%d} #{secrets.token_hex(4)}",
            )
            # Key before certificate: if interrupted in between, the pair no longer matches
            # and the next run starts over instead of using a half-replaced CA.
            _write_atomically(certs.ca_key, ca.private_key_pem.bytes(), 0o600)
            _write_atomically(certs.ca_cert, ca.cert_pem.bytes(), 0o644)
        leaf = ca.issue_cert(
            *_LEAF_NAMES,
            organization_name=_ORGANIZATION,
            organization_unit_name="localhost",
            not_before=now - _LEAF_BACKDATE,
            not_after=now - _LEAF_BACKDATE + _LEAF_LIFETIME,
        )
        _write_atomically(certs.key, leaf.private_key_pem.bytes(), 0o600)
        chain = leaf.cert_chain_pems[0].bytes() + ca.cert_pem.bytes()
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
    return "\n".join(
        [
            f"Development TLS certificates for localhost, 127.0.0.1 and ::1 are in "
            f"{certs.directory.absolute()}",
            "Clients must trust the local CA that signed them:",
            f"  CA certificate: {ca}",
            "",
            f"  curl:     curl --cacert {ca} {url}",
            f"  Python:   SSL_CERT_FILE={ca} python your_client.py",
            "            (httpx and ssl.create_default_context(); replaces the default CA "
            "bundle for that process)",
            "  Firefox:  Settings > Privacy & Security > Certificates > View Certificates > "
            'Authorities > Import, then tick "Trust this CA to identify websites"',
            "  Chrome/Chromium on Linux: import it as a trusted authority in "
            "chrome://certificate-manager, or run",
            f"            certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n gateway-dev-ca -i {ca}",
            "            (certutil is in libnss3-tools; restart the browser afterwards)",
            "",
            "This CA is for local development only. Its private key is stored unencrypted in",
            f"{ca_key}; anyone who can read it can impersonate any website to a browser that",
            "trusts the CA. Never share or commit that directory, and remove the CA from your",
            "browser when you no longer need it. Delete the directory to start over.",
        ]
    )


def _load_ca(certs: DevCertificates, now: datetime.datetime) -> trustme.CA | None:
    cert_pem = _read(certs.ca_cert)
    key_pem = _read(certs.ca_key)
    if cert_pem is None or key_pem is None:
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = load_pem_private_key(key_pem, password=None)
    except _PARSE_ERRORS:
        return None
    if not (_is_current(cert, now) and _public_key_der(cert) == _public_key_der(key)):
        return None
    return trustme.CA.from_pem(cert_pem, key_pem)


def _leaf_is_usable(certs: DevCertificates, ca: trustme.CA, now: datetime.datetime) -> bool:
    chain_pem = _read(certs.cert)
    key_pem = _read(certs.key)
    if chain_pem is None or key_pem is None:
        return False
    try:
        ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
        chain = x509.load_pem_x509_certificates(chain_pem)
        key = load_pem_private_key(key_pem, password=None)
        leaf = chain[0]
        leaf.verify_directly_issued_by(ca_cert)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (*_PARSE_ERRORS, InvalidSignature, x509.ExtensionNotFound):
        return False
    return (
        chain[1:] == [ca_cert]
        and _REQUIRED_SANS.issubset(names)
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
