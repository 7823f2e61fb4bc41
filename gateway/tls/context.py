"""The server's SSLContext, built from Config.

Certificates are loaded here, before anything is bound, so that a missing file, a key that
does not match its certificate or a wrong password is reported as one clear line.
"""

from __future__ import annotations

import os
import ssl

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ..config import DEFAULT_PORT, BindAddress, Config, ConfigError
from ..logs import error_logger
from .sslobject import ServerSSLContext, ServerSSLObject

_VERIFY_MODES = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


class CertificateError(ConfigError):
    """A certificate, key or CA file given in the settings cannot be used."""


def certificate_files(config: Config) -> tuple[str, str | None] | None:
    """(certificate, key) to serve TLS with, or None for plain HTTP. With --dev-tls the
    development certificates are made on first use, and the log says how to trust them."""
    if config.dev_tls:
        from .devcerts import ensure_dev_certificates, trust_instructions

        certs, created = ensure_dev_certificates(config.certs_dir)
        if created:
            first = next((bind for bind in config.binds if isinstance(bind, BindAddress)), None)
            host, port = (first.url_host, first.port) if first else (
                "localhost", DEFAULT_PORT if config.port is None else config.port)
            # Port 0 is chosen when the listener binds, after this: the listening line names it.
            url = f"https://{host}:{port or 'PORT'}"
            error_logger.info("created development certificates in %s", certs.directory)
            error_logger.info("%s", trust_instructions(certs, url))
        else:
            error_logger.info(
                "using development certificates in %s (trust %s)", certs.directory, certs.ca_cert
            )
        return str(certs.cert), str(certs.key)
    if config.certfile:
        return config.certfile, config.keyfile
    return None


def create_ssl_context(
    config: Config, certfile: str, keyfile: str | None, alpn_protocols: list[str]
) -> ServerSSLContext:
    """A server context: TLS 1.2 minimum, ALPN offering `alpn_protocols` in order."""
    _require_file("--certfile", certfile)
    if keyfile is not None:
        _require_file("--keyfile", keyfile)
    context = ServerSSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    password = config.keyfile_password
    _check_pair(certfile, keyfile, password)
    callback = password if password is not None else _no_password(keyfile or certfile)
    try:
        context.load_cert_chain(certfile, keyfile, password=callback)
    except (ssl.SSLError, OSError, ValueError, TypeError) as exc:
        raise CertificateError(f"cannot load certificate {certfile!r}: {exc}") from None
    if config.ciphers:
        try:
            context.set_ciphers(config.ciphers)
        except ssl.SSLError:
            raise CertificateError(
                f"invalid --ciphers {config.ciphers!r}: OpenSSL accepts none of these ciphers"
            ) from None
    context.verify_mode = _VERIFY_MODES[config.verify_mode]
    if config.ca_certs:
        _require_file("--ca-certs", config.ca_certs)
        _read_certificates("--ca-certs", config.ca_certs)
        try:
            context.load_verify_locations(cafile=config.ca_certs)
        except (ssl.SSLError, OSError) as exc:
            raise CertificateError(
                f"cannot load --ca-certs {config.ca_certs!r}: {exc.strerror or exc}"
            ) from None
    context.set_alpn_protocols(alpn_protocols)
    context.sslobject_class = ServerSSLObject
    return context


def _no_password(key: str):  # noqa: ANN202 - an OpenSSL password callback
    """Without this, OpenSSL would prompt for the password on the terminal and hang a
    service manager's start."""

    def refuse() -> str:
        raise CertificateError(
            f"the key {key!r} is encrypted: give its password with --keyfile-password"
        )

    return refuse


def _require_file(flag: str, path: str) -> None:
    if not os.path.exists(path):
        raise CertificateError(f"{flag} {path!r}: no such file")
    if not os.path.isfile(path):
        raise CertificateError(f"{flag} {path!r}: not a regular file")
    if not os.access(path, os.R_OK):
        raise CertificateError(f"{flag} {path!r}: permission denied")


def _read_certificates(flag: str, path: str) -> list[x509.Certificate]:
    try:
        with open(path, "rb") as handle:
            return x509.load_pem_x509_certificates(handle.read())
    except ValueError:
        raise CertificateError(f"{flag} {path!r}: no PEM certificate in it") from None


def _check_pair(certfile: str, keyfile: str | None, password: str | None) -> None:
    """Read certificate and key with cryptography first: OpenSSL's own errors ("PEM lib")
    do not say which file is wrong, or that a password is."""
    certificate = _read_certificates("--certfile", certfile)[0]
    key_path = keyfile or certfile
    with open(key_path, "rb") as handle:
        data = handle.read()
    if b"PRIVATE KEY-----" not in data:
        if keyfile is None:
            raise CertificateError(f"--certfile {certfile!r} holds no private key: add --keyfile")
        raise CertificateError(f"--keyfile {keyfile!r}: no PEM private key in it")
    secret = password.encode() if password is not None else None
    try:
        key = serialization.load_pem_private_key(data, secret)
    except TypeError:
        if secret is None:
            raise CertificateError(
                f"the key {key_path!r} is encrypted: give its password with --keyfile-password"
            ) from None
        key = serialization.load_pem_private_key(data, None)  # not encrypted: no password needed
        error_logger.warning(
            "--keyfile-password was given but the key %r is not encrypted: the password is"
            " not needed", key_path,
        )
    except ValueError:
        if secret is not None:
            raise CertificateError(f"wrong --keyfile-password for the key {key_path!r}") from None
        raise CertificateError(f"cannot read the private key in {key_path!r}") from None
    except UnsupportedAlgorithm:
        raise CertificateError(f"the key in {key_path!r} uses an unsupported algorithm") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if certificate.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        raise CertificateError(f"the key {key_path!r} does not match the certificate {certfile!r}")
