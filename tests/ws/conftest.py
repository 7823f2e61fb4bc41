"""The `mode` fixture of the WebSocket-over-HTTP/2 tests: each runs over h2c and over TLS."""

from __future__ import annotations

import pytest
from h2_ws_client import client_tls_context
from h2_ws_support import H2C, Mode
from support import tls_settings


@pytest.fixture(params=["h2c", "tls"])
def mode(request: pytest.FixtureRequest, certs) -> Mode:
    if request.param == "h2c":
        return H2C
    return Mode("tls", tls_settings(certs), client_tls_context(certs.ca_file), "wss")
