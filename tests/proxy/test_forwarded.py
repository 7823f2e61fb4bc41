"""--proxy-headers: the client, scheme and host a trusted proxy forwards, over HTTP/1.1,
HTTP/2 and WebSocket handshakes; everyone else's forwarded headers are left alone."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
import websockets.sync.client
from hypothesis import given, settings
from hypothesis import strategies as st
from support import OTHER_ADDRESS, other_client, tls_settings

from gateway.config import Config, ConfigError
from gateway.proxy.forwarded import apply_forwarded
from gateway.proxy.trust import TrustedPeers

pytestmark = pytest.mark.timeout(60)

LOOPBACK = TrustedPeers(["127.0.0.1", "::1"])


def scope_with(*headers: tuple[str, str], scheme: str = "http") -> dict:
    return {
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "scheme": scheme,
        "headers": [(name.lower().encode(), value.encode("latin-1")) for name, value in headers],
    }


def forwarded(*headers: tuple[str, str], trust: TrustedPeers = LOOPBACK, scheme: str = "http") -> dict:
    scope = scope_with(*headers, scheme=scheme)
    apply_forwarded(scope, trust)
    return {key: scope[key] for key in ("client", "scheme", "server")}


UNCHANGED = {"client": ("127.0.0.1", 50000), "scheme": "http", "server": ("127.0.0.1", 8000)}


# -- X-Forwarded-* ---------------------------------------------------------------------------


def test_x_forwarded_for_the_rightmost_untrusted_hop_is_the_client():
    trust = TrustedPeers(["127.0.0.1", "10.0.0.0/8"])
    result = forwarded(("X-Forwarded-For", "203.0.113.9, 198.51.100.7, 10.1.2.3"), trust=trust)
    assert result["client"] == ("198.51.100.7", 0)


def test_x_forwarded_for_all_trusted_gives_the_leftmost():
    trust = TrustedPeers(["127.0.0.1", "10.0.0.0/8"])
    assert forwarded(("X-Forwarded-For", "10.0.0.5, 10.1.2.3"), trust=trust)["client"] == ("10.0.0.5", 0)


def test_x_forwarded_for_over_several_fields_with_ports_and_ipv6():
    result = forwarded(("X-Forwarded-For", "192.0.2.1:4711"), ("X-Forwarded-For", "[2001:db8::1]:443"))
    assert result["client"] == ("2001:db8::1", 443)
    assert forwarded(("X-Forwarded-For", "2001:db8::2"))["client"] == ("2001:db8::2", 0)


def test_x_forwarded_proto_host_and_port_set_scheme_and_server():
    result = forwarded(("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "example.com"))
    assert result["scheme"] == "https" and result["server"] == ("example.com", 443)
    result = forwarded(("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "example.com:8443"))
    assert result["server"] == ("example.com", 8443)
    result = forwarded(("X-Forwarded-Host", "example.com"), ("X-Forwarded-Port", "8080"))
    assert result["server"] == ("example.com", 8080)
    assert forwarded(("X-Forwarded-Proto", "wss"))["scheme"] == "https"  # the HTTP scope's


@pytest.mark.parametrize("header", [
    ("X-Forwarded-For", "not-an-address"),
    ("X-Forwarded-For", "192.0.2.1, , 192.0.2.2"),
    ("X-Forwarded-For", "192.0.2.1:99999"),
    ("X-Forwarded-For", "[2001:db8::1"),
    ("X-Forwarded-Proto", "gopher"),
    ("X-Forwarded-Host", "evil.com/path"),
    ("X-Forwarded-Host", "a b"),
    ("X-Forwarded-Port", "-1"),
    ("Forwarded", 'for="unclosed'),
    ("Forwarded", "for"),
    ("Forwarded", "for=192.0.2.1;for=192.0.2.2"),
    ("Forwarded", "for=999.0.0.1"),
    ("Forwarded", "proto=ftp"),
])
def test_a_malformed_value_is_ignored_as_a_whole(header):
    assert forwarded(header) == UNCHANGED
    if header[0].startswith("X-"):  # one bad field spoils the family
        assert forwarded(header, ("X-Forwarded-For", "192.0.2.1")) == UNCHANGED


# -- RFC 7239 --------------------------------------------------------------------------------


def test_forwarded_elements_from_the_right():
    trust = TrustedPeers(["127.0.0.1", "10.0.0.0/8"])
    result = forwarded(
        ("Forwarded", 'for=192.0.2.60;proto=https;host=app.example, for="[2001:db8:cafe::17]:4711"'),
        ("Forwarded", "for=10.0.0.1;proto=http"), trust=trust)
    assert result == {"client": ("2001:db8:cafe::17", 4711), "scheme": "http",
                      "server": ("127.0.0.1", 8000)}
    result = forwarded(("Forwarded", 'for=192.0.2.60;proto=https;host="app.example:8443"'))
    assert result == {"client": ("192.0.2.60", 0), "scheme": "https", "server": ("app.example", 8443)}


def test_forwarded_wins_over_x_forwarded():
    result = forwarded(("X-Forwarded-For", "198.51.100.1"), ("Forwarded", "For=192.0.2.1"))
    assert result["client"] == ("192.0.2.1", 0)


def test_forwarded_unknown_and_obfuscated_nodes_name_nobody():
    assert forwarded(("Forwarded", "for=unknown;proto=https")) == {**UNCHANGED, "scheme": "https"}
    assert forwarded(("Forwarded", "for=_hidden"))["client"] == UNCHANGED["client"]


@pytest.mark.parametrize("header", [
    ("X-Forwarded-Port", "\u00b2"),
    ("X-Forwarded-Host", "app.example:1\u00b3"),
    ("Forwarded", 'for="192.0.2.1:\u00b9"'),
])
def test_a_port_of_latin1_superscript_digits_is_ignored(header):
    """str.isdigit() takes latin-1's superscripts, int() does not: such a port is a value that
    does not parse, ignored as a whole (found by the test below, as a 500)."""
    assert forwarded(header) == UNCHANGED


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["forwarded", "x-forwarded-for", "x-forwarded-proto",
                                           "x-forwarded-host", "x-forwarded-port"]),
                          st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255),
                                  max_size=80)), max_size=4))
def test_any_forwarded_value_from_a_trusted_peer_never_raises(headers):
    scope = scope_with(*headers)
    apply_forwarded(scope, LOOPBACK)
    assert scope["scheme"] in ("http", "https")
    assert isinstance(scope["client"], tuple) and isinstance(scope["server"], tuple)


def test_trust_entries():
    trust = TrustedPeers(["10.0.0.0/8", "2001:db8::1", "unix"])
    assert trust.trusts("10.9.9.9") and trust.trusts("2001:db8::1") and trust.trusts(None)
    assert trust.trusts("::ffff:10.1.1.1")  # an IPv4 peer on a dual-stack socket
    assert not trust.trusts("11.0.0.1") and not trust.trusts("example.com")
    assert TrustedPeers(["*"]).trusts("203.0.113.1")
    assert not TrustedPeers(["127.0.0.1"]).trusts(None)
    with pytest.raises(ConfigError, match="--forwarded-allow-ips entry 'localhost'"):
        Config(forwarded_allow_ips="127.0.0.1,localhost")


# -- over the wire ---------------------------------------------------------------------------


async def where(scope, receive, send):
    """Answers with the scope's client, scheme and server."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(
            {"client": scope["client"], "scheme": scope["scheme"], "server": scope["server"]})})
        await send({"type": "websocket.close"})
        return
    if scope["type"] != "http":
        return
    body = json.dumps({"client": scope["client"], "scheme": scope["scheme"],
                       "server": scope["server"], "http_version": scope["http_version"]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


FORGED = {"X-Forwarded-For": "203.0.113.50", "X-Forwarded-Proto": "https",
          "X-Forwarded-Host": "shop.example"}


def test_a_local_proxy_is_believed_by_default_over_http1_and_h2c(serve):
    with serve(where) as server:
        for client in (httpx.Client(), httpx.Client(http1=False, http2=True)):
            with client:
                answer = client.get(server.url, headers=FORGED).json()
            assert answer["client"] == ["203.0.113.50", 0]
            assert answer["scheme"] == "https"
            assert answer["server"] == ["shop.example", 443]


def test_over_tls_h2(serve, certs):
    with serve(where, **tls_settings(certs)) as server, \
            httpx.Client(http2=True, verify=certs.client_context()) as client:
        answer = client.get(f"https://localhost:{server.port}/",
                            headers={"Forwarded": 'for="[2001:db8::5]:1234";proto=http'}).json()
    assert answer["http_version"] == "2"
    assert answer["client"] == ["2001:db8::5", 1234] and answer["scheme"] == "http"


def test_an_untrusted_peer_cannot_forge_its_address(serve):
    with serve(where) as server, other_client() as client:
        answer = client.get(server.url, headers=FORGED).json()
        forged = client.get(server.url, headers={"Forwarded": "for=203.0.113.50;proto=https"}).json()
    for result in (answer, forged):
        assert result["client"][0] == OTHER_ADDRESS and result["scheme"] == "http"
        assert result["server"] == ["127.0.0.1", server.port]


def test_off_or_not_allowed_means_left_as_sent(serve):
    with serve(where, proxy_headers=False) as server:
        assert httpx.get(server.url, headers=FORGED).json()["client"][0] == "127.0.0.1"
    with serve(where, forwarded_allow_ips="10.0.0.1") as server:
        assert httpx.get(server.url, headers=FORGED).json()["client"][0] == "127.0.0.1"
    with serve(where, forwarded_allow_ips="*") as server, other_client() as client:
        assert client.get(server.url, headers=FORGED).json()["client"] == ["203.0.113.50", 0]


def test_websocket_handshake_gets_wss_and_the_client(serve):
    with serve(where) as server, websockets.sync.client.connect(
            f"ws://127.0.0.1:{server.port}/", additional_headers=FORGED) as ws:
        answer = json.loads(ws.recv(5))
    assert answer == {"client": ["203.0.113.50", 0], "scheme": "wss", "server": ["shop.example", 443]}


def test_a_unix_socket_peer_is_trusted_with_unix(serve, tmp_path: Path):
    path = tmp_path / "app.sock"
    with serve(where, bind=[f"unix:{path}"], forwarded_allow_ips="unix"):
        result = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--unix-socket", str(path),
             "-H", "X-Forwarded-For: 198.51.100.23", "-H", "X-Forwarded-Proto: https", "http://x/"],
            capture_output=True, text=True)
    answer = json.loads(result.stdout)
    assert answer["client"] == ["198.51.100.23", 0] and answer["scheme"] == "https"


def test_forwarded_allow_ips_from_the_environment_as_uvicorn_reads_it():
    from gateway.cli import read_settings

    settings = read_settings(["hello:app"], {"FORWARDED_ALLOW_IPS": "10.0.0.0/8, unix"})
    assert settings.values["forwarded_allow_ips"] == ["10.0.0.0/8", "unix"]
    settings = read_settings(["--forwarded-allow-ips", "*", "hello:app"],
                             {"FORWARDED_ALLOW_IPS": "10.0.0.0/8"})
    assert settings.values["forwarded_allow_ips"] == ["*"]
