"""The server's SSLContext, built from Config.

Certificates are loaded here, before anything is bound, so that a missing file, a key that
does not match its certificate or a wrong password is reported as one clear line.
"""

from __future__ import annotations

import os
import ssl

from ..config import Config, ConfigError

_VERIFY_MODES = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


class CertificateError(ConfigError):
    """A certificate, key or CA file given in the settings cannot be used."""


def create_ssl_context(
    config: Config, certfile: str, keyfile: str | None, alpn_protocols: list[str]
) -> ssl.SSLContext:
    """A server context: TLS 1.2 minimum, ALPN offering `alpn_protocols` in order."""
    _require_file("--certfile", certfile)
    if keyfile is not None:
        _require_file("--keyfile", keyfile)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    password = config.keyfile_password
    if password is None:
        password = _no_password(keyfile or certfile)
    try:
        context.load_cert_chain(certfile, keyfile, password=password)
    except ssl.SSLError as exc:
        raise CertificateError(_explain_load_error(exc, certfile, keyfile, password)) from None
    except (OSError, ValueError, TypeError) as exc:
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
        try:
            context.load_verify_locations(cafile=config.ca_certs)
        except (ssl.SSLError, OSError) as exc:
            raise CertificateError(
                f"cannot load --ca-certs {config.ca_certs!r}: {exc.strerror or exc}"
            ) from None
    context.set_alpn_protocols(alpn_protocols)
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


def _explain_load_error(exc: ssl.SSLError, certfile: str, keyfile: str | None, password: object) -> str:
    reason = (exc.reason or "").upper()
    text = str(exc)
    key = keyfile or certfile
    if "KEY_VALUES_MISMATCH" in reason or "key values mismatch" in text:
        return f"the key {key!r} does not match the certificate {certfile!r}"
    if "BAD_DECRYPT" in reason or "bad decrypt" in text:
        return f"wrong --keyfile-password for the key {key!r}"
    if "PEM" in (exc.library or "") or "PEM" in reason or "NO_START_LINE" in reason:
        return (
            f"cannot read {certfile!r}"
            + (f" or {keyfile!r}" if keyfile else "")
            + ": expected PEM certificate and private key files"
        )
    return f"cannot load certificate {certfile!r}: {exc.reason or text}"
