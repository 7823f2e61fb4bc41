"""The ASGI TLS extension (`scope["extensions"]["tls"]`), computed once per connection.

Every request on a connection shares the same TLS facts, so the protocols build this when the
connection is made and put the same dict in each scope.
"""

from __future__ import annotations

import ssl
from typing import Any

from cryptography import x509

_TLS_VERSIONS = {
    "TLSv1": 0x0301,
    "TLSv1.1": 0x0302,
    "TLSv1.2": 0x0303,
    "TLSv1.3": 0x0304,
}


class TLSInfo:
    """What never changes per server: the server certificate and the cipher id table."""

    def __init__(self, context: ssl.SSLContext, certfile: str) -> None:
        self.server_cert = _first_pem_certificate(certfile)
        # OpenSSL ids are 0x03000000 | IANA id; the ASGI extension wants the IANA id.
        self.cipher_ids = {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}

    def extension(self, ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, Any]:
        if ssl_object is None:
            return {}
        cipher = ssl_object.cipher()
        chain, name, error = _client_chain(ssl_object)
        return {
            "server_cert": self.server_cert,
            "client_cert_chain": chain,
            "client_cert_name": name,
            "client_cert_error": error,
            "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
            "cipher_suite": self.cipher_ids.get(cipher[0]) if cipher else None,
        }


def _client_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> tuple[list[str], str | None, None]:
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return [], None, None
    name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    return [ssl.DER_cert_to_PEM_cert(der)], name, None


def _first_pem_certificate(certfile: str) -> str | None:
    with open(certfile, encoding="ascii", errors="replace") as handle:
        text = handle.read()
    begin = text.find("-----BEGIN CERTIFICATE-----")
    end_marker = "-----END CERTIFICATE-----"
    end = text.find(end_marker, begin)
    if begin < 0 or end < 0:
        return None
    return text[begin : end + len(end_marker)] + "\n"
