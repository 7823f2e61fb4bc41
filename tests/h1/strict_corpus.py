"""Hostile HTTP/1.1 requests and the one verdict gateway gives each, whichever engine parses
it (gateway/h1/strict.py): an error status (then the connection closes), or what the app sees.

Each entry is raw bytes sent as they are on a fresh connection; test_h1_strict.py sends them
to a server on each engine. Names say what is wrong; the comment says why where it is not
obvious. Verdicts assume the default max_head_size (32 KiB) and no h2c."""

from __future__ import annotations

from typing import NamedTuple


class Seen(NamedTuple):
    """One request as the app sees it in its scope and body."""

    method: str
    path: str
    raw_path: bytes
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


class Verdict(NamedTuple):
    served: list[Seen]  # what the app gets, in order (each answered 200)
    status: int | None  # the error answered after them, then the connection closes
    closes: bool  # the connection closes after the served requests, without an error


HOST = [(b"host", b"x")]


def seen(method: str = "GET", raw_path: bytes = b"/", query: bytes = b"",
         headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b"") -> Seen:
    """A request as the app sees it; `path` is `raw_path` (no percent-escapes in the corpus)."""
    return Seen(method, raw_path.decode("ascii"), raw_path, query, HOST if headers is None else headers, body)


def refused(status: int, *served: Seen) -> Verdict:
    return Verdict(list(served), status, True)


def served(*requests: Seen, closes: bool = False) -> Verdict:
    return Verdict(list(requests), None, closes)


def get(line: bytes, *fields: bytes) -> bytes:
    """A request: `line`, Host: x, then `fields`, then the empty line."""
    return line + b"\r\nHost: x\r\n" + b"".join(field + b"\r\n" for field in fields) + b"\r\n"


def post(*fields: bytes, body: bytes = b"") -> bytes:
    return get(b"POST / HTTP/1.1", *fields) + body


CHUNKED = b"Transfer-Encoding: chunked"
TE_SEEN = [(b"host", b"x"), (b"transfer-encoding", b"chunked")]


def chunked(body: bytes) -> bytes:
    return post(CHUNKED, body=body)


CORPUS: dict[str, tuple[bytes, Verdict]] = {
    # -- the request line: METHOD SP request-target SP HTTP/x.y, one SP each -----------------
    "two-spaces-after-method": (get(b"GET  / HTTP/1.1"), refused(400)),
    "two-spaces-before-version": (get(b"GET /  HTTP/1.1"), refused(400)),
    "tab-as-separator": (get(b"GET\t/ HTTP/1.1"), refused(400)),
    "leading-space": (get(b" GET / HTTP/1.1"), refused(400)),
    "trailing-space": (get(b"GET / HTTP/1.1 "), refused(400)),
    # RFC 9112 2.2 lets a server skip empty lines first; a stray CRLF means the sender framed
    # the previous message differently, so gateway refuses it (as gunicorn and h11 do).
    "empty-line-before-request-line": (b"\r\n" + get(b"GET / HTTP/1.1"), refused(400)),
    "bare-lf-before-request-line": (b"\n" + get(b"GET / HTTP/1.1"), refused(400)),
    "bare-cr-in-request-line": (get(b"GET /\rx HTTP/1.1"), refused(400)),
    "request-line-ends-in-bare-lf": (b"GET / HTTP/1.1\nHost: x\r\n\r\n", refused(400)),
    "all-lines-bare-lf": (b"GET / HTTP/1.1\nHost: x\n\n", refused(400)),
    "tls-client-hello": (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40, refused(400)),
    # Methods are case-sensitive tokens (RFC 9110 9.1): `get` is an unknown method, 501.
    "lowercase-method": (get(b"get / HTTP/1.1"), refused(501)),
    "mixed-case-method": (get(b"Get / HTTP/1.1"), refused(501)),
    "unknown-method": (get(b"PURGEX / HTTP/1.1"), refused(501)),
    "method-not-a-token": (get(b"GE(T / HTTP/1.1"), refused(400)),
    "nul-in-method": (get(b"G\x00T / HTTP/1.1"), refused(400)),
    "connect": (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", refused(501)),
    "http2-preface-without-h2c": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", refused(505)),
    "registered-method": (get(b"PROPFIND /dav HTTP/1.1"), served(seen("PROPFIND", b"/dav"))),
    "lowercase-version": (get(b"GET / http/1.1"), refused(400)),
    "http-1.2": (get(b"GET / HTTP/1.2"), refused(505)),
    "http-2.0": (get(b"GET / HTTP/2.0"), refused(505)),
    "http-0.9-version": (get(b"GET / HTTP/0.9"), refused(505)),
    "http-0.9-request-line": (b"GET /\r\n\r\n", refused(400)),
    "two-digit-minor-version": (get(b"GET / HTTP/1.10"), refused(400)),
    "version-without-minor": (get(b"GET / HTTP/1"), refused(400)),
    "empty-target": (get(b"GET  HTTP/1.1"), refused(400)),
    "nul-in-target": (get(b"GET /a\x00b HTTP/1.1"), refused(400)),
    "del-in-target": (get(b"GET /a\x7fb HTTP/1.1"), refused(400)),
    "tab-in-target": (get(b"GET /a\tb HTTP/1.1"), refused(400)),
    "obs-text-in-target": (get(b"GET /caf\xe9 HTTP/1.1"), refused(400)),
    "fragment-in-target": (get(b"GET /a#b HTTP/1.1"), refused(400)),
    "asterisk-form-with-get": (get(b"GET * HTTP/1.1"), refused(400)),
    "asterisk-form-with-options": (get(b"OPTIONS * HTTP/1.1"), served(seen("OPTIONS", b"*"))),
    "authority-form-with-get": (get(b"GET example.com:80 HTTP/1.1"), refused(400)),
    "relative-target": (get(b"GET a/b HTTP/1.1"), refused(400)),
    "visible-ascii-target": (
        get(b'GET /"<>\\^`{|}?q="<>\\^`{|} HTTP/1.1'),
        served(seen(raw_path=b'/"<>\\^`{|}', query=b'q="<>\\^`{|}')),
    ),
    # -- header lines ------------------------------------------------------------------------
    "obs-fold": (get(b"GET / HTTP/1.1", b"X-A: a", b" b"), refused(400)),
    "obs-fold-with-tab": (get(b"GET / HTTP/1.1", b"X-A: a", b"\tb"), refused(400)),
    "first-line-folded": (b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", refused(400)),
    "space-before-colon": (get(b"GET / HTTP/1.1", b"X-A : a"), refused(400)),
    "tab-before-colon": (get(b"GET / HTTP/1.1", b"X-A\t: a"), refused(400)),
    "empty-field-name": (get(b"GET / HTTP/1.1", b": a"), refused(400)),
    "no-colon": (get(b"GET / HTTP/1.1", b"X-A"), refused(400)),
    "name-not-a-token": (get(b"GET / HTTP/1.1", b"X(A): a"), refused(400)),
    "obs-text-in-name": (get(b"GET / HTTP/1.1", b"X-\xc3\x9c: a"), refused(400)),
    "nul-in-value": (get(b"GET / HTTP/1.1", b"X-A: a\x00b"), refused(400)),
    "control-in-value": (get(b"GET / HTTP/1.1", b"X-A: a\x01b"), refused(400)),
    "del-in-value": (get(b"GET / HTTP/1.1", b"X-A: a\x7fb"), refused(400)),
    "bare-cr-in-value": (get(b"GET / HTTP/1.1", b"X-A: a\rb"), refused(400)),
    "bare-lf-between-fields": (b"GET / HTTP/1.1\r\nHost: x\nX-A: a\r\n\r\n", refused(400)),
    "bare-lf-ends-head": (b"GET / HTTP/1.1\r\nHost: x\r\n\n", refused(400)),
    "cr-cr-lf": (b"GET / HTTP/1.1\r\nHost: x\r\r\n\r\n", refused(400)),
    "tab-in-value": (
        get(b"GET / HTTP/1.1", b"X-A: a\tb"), served(seen(headers=[*HOST, (b"x-a", b"a\tb")])),
    ),
    "obs-text-in-value": (
        get(b"GET / HTTP/1.1", b"X-A: caf\xe9"), served(seen(headers=[*HOST, (b"x-a", b"caf\xe9")])),
    ),
    "whitespace-around-value": (
        get(b"GET / HTTP/1.1", b"X-A: \t a b \t "), served(seen(headers=[*HOST, (b"x-a", b"a b")])),
    ),
    "empty-value": (get(b"GET / HTTP/1.1", b"X-A:"), served(seen(headers=[*HOST, (b"x-a", b"")]))),
    "head-over-32k": (get(b"GET / HTTP/1.1", b"X-A: " + b"a" * 33_000), refused(431)),
    "unfinished-head-over-32k": (b"GET / HTTP/1.1\r\nX-A: " + b"a" * 33_000, refused(431)),
    # -- Host (RFC 9112 3.2: exactly one in HTTP/1.1, at most one in 1.0; RFC 3986 syntax) ----
    "no-host": (b"GET / HTTP/1.1\r\nX-A: a\r\n\r\n", refused(400)),
    "two-hosts": (get(b"GET / HTTP/1.1", b"Host: y"), refused(400)),
    "two-identical-hosts": (get(b"GET / HTTP/1.1", b"Host: x"), refused(400)),
    "two-hosts-http10": (get(b"GET / HTTP/1.0", b"Host: y"), refused(400)),
    "no-host-http10": (b"GET / HTTP/1.0\r\n\r\n", served(seen(headers=[]), closes=True)),
    "host-with-space": (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", refused(400)),
    "host-with-userinfo": (b"GET / HTTP/1.1\r\nHost: user@x\r\n\r\n", refused(400)),
    "host-with-path": (b"GET / HTTP/1.1\r\nHost: x/y\r\n\r\n", refused(400)),
    "host-with-bad-port": (b"GET / HTTP/1.1\r\nHost: x:8o\r\n\r\n", refused(400)),
    "host-bad-percent": (b"GET / HTTP/1.1\r\nHost: x%zz\r\n\r\n", refused(400)),
    "host-bad-ipv6": (b"GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", refused(400)),
    "host-ipv6-zone": (b"GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", refused(400)),
    "host-ipv6-and-port": (
        b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", served(seen(headers=[(b"host", b"[::1]:8080")])),
    ),
    "host-percent-encoded": (
        b"GET / HTTP/1.1\r\nHost: ex%41mple\r\n\r\n", served(seen(headers=[(b"host", b"ex%41mple")])),
    ),
    # RFC 3986 allows an empty reg-name (RFC 9112 3.2: an empty Host for an empty authority).
    "empty-host": (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", served(seen(headers=[(b"host", b"")]))),
    "host-with-control": (b"GET / HTTP/1.1\r\nHost: x\x01y\r\n\r\n", refused(400)),
    # -- absolute-form: the target's authority is the Host the app sees (RFC 9112 3.2.2) -----
    "absolute-form": (
        get(b"GET http://a.example/p?q=1 HTTP/1.1"),
        served(seen(raw_path=b"/p", query=b"q=1", headers=[(b"host", b"a.example")])),
    ),
    "absolute-form-https-port": (
        get(b"GET HTTPS://a.example:8443/p HTTP/1.1"),
        served(seen(raw_path=b"/p", headers=[(b"host", b"a.example:8443")])),
    ),
    "absolute-form-no-path": (
        get(b"GET http://a.example HTTP/1.1"), served(seen(headers=[(b"host", b"a.example")])),
    ),
    "absolute-form-query-no-path": (
        get(b"GET http://a.example?q=1 HTTP/1.1"),
        served(seen(query=b"q=1", headers=[(b"host", b"a.example")])),
    ),
    "absolute-form-http10-without-host": (
        b"GET http://a.example/p HTTP/1.0\r\n\r\n",
        served(seen(raw_path=b"/p", headers=[(b"host", b"a.example")]), closes=True),
    ),
    "absolute-form-userinfo": (get(b"GET http://u:p@a.example/ HTTP/1.1"), refused(400)),
    "absolute-form-empty-host": (get(b"GET http:///p HTTP/1.1"), refused(400)),
    "absolute-form-other-scheme": (get(b"GET ftp://a.example/ HTTP/1.1"), refused(400)),
    "absolute-form-bad-host": (get(b"GET http://a%zz/ HTTP/1.1"), refused(400)),
    "absolute-form-still-needs-host": (b"GET http://a.example/ HTTP/1.1\r\n\r\n", refused(400)),
    # -- Content-Length: digits, one line, one value ------------------------------------------
    "content-length-repeated-identical": (
        post(b"Content-Length: 1", b"Content-Length: 1", body=b"A"), refused(400),
    ),
    "content-length-list": (post(b"Content-Length: 1, 1", body=b"A"), refused(400)),
    "content-length-conflicting": (
        post(b"Content-Length: 1", b"Content-Length: 2", body=b"AB"), refused(400),
    ),
    "content-length-negative": (post(b"Content-Length: -1"), refused(400)),
    "content-length-plus": (post(b"Content-Length: +1", body=b"A"), refused(400)),
    "content-length-hex": (post(b"Content-Length: 0x1", body=b"A"), refused(400)),
    "content-length-inner-space": (post(b"Content-Length: 1 0", body=b"A" * 10), refused(400)),
    "content-length-empty": (post(b"Content-Length:"), refused(400)),
    "content-length-2^63": (post(b"Content-Length: 9223372036854775808"), refused(400)),
    "content-length-2^64": (post(b"Content-Length: 18446744073709551616"), refused(400)),
    "content-length-20-digits": (post(b"Content-Length: 00000000000000000001", body=b"A"), refused(400)),
    "content-length-arabic-digit": (post("Content-Length: \u0661".encode()), refused(400)),
    "content-length-leading-zeros": (
        post(b"Content-Length: 007", body=b"1234567"),
        served(seen("POST", headers=[*HOST, (b"content-length", b"007")], body=b"1234567")),
    ),
    "content-length-trailing-whitespace": (
        post(b"Content-Length: 2 \t", body=b"ab"),
        served(seen("POST", headers=[*HOST, (b"content-length", b"2")], body=b"ab")),
    ),
    # -- Transfer-Encoding: exactly chunked ----------------------------------------------------
    # RFC 9112 6.3: chunked missing, not last, or twice: the length is unknown, 400.
    "te-gzip": (post(b"Transfer-Encoding: gzip", body=b"0\r\n\r\n"), refused(400)),
    "te-identity": (post(b"Transfer-Encoding: identity"), refused(400)),
    "te-chunked-then-gzip": (post(b"Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n"), refused(400)),
    "te-chunked-twice": (post(b"Transfer-Encoding: chunked, chunked", body=b"0\r\n\r\n"), refused(400)),
    "te-two-lines": (post(CHUNKED, CHUNKED, body=b"0\r\n\r\n"), refused(400)),
    "te-two-lines-different": (post(CHUNKED, b"Transfer-encoding: x", body=b"0\r\n\r\n"), refused(400)),
    "te-empty": (post(b"Transfer-Encoding:", body=b"0\r\n\r\n"), refused(400)),
    "te-xchunked": (post(b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"), refused(400)),
    "te-empty-list-element": (post(b"Transfer-Encoding: ,chunked", body=b"0\r\n\r\n"), refused(400)),
    "te-chunked-with-parameter": (post(b"Transfer-Encoding: chunked;q=1", body=b"0\r\n\r\n"), refused(400)),
    # RFC 9112 6.1: a coding gateway does not implement, framed by chunked: 501.
    "te-gzip-then-chunked": (post(b"Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"), refused(501)),
    "te-and-content-length": (post(CHUNKED, b"Content-Length: 5", body=b"0\r\n\r\n"), refused(400)),
    "cl-then-te-smuggle": (
        post(b"Content-Length: 6", CHUNKED, body=b"0\r\n\r\nG"), refused(400),
    ),
    "te-in-http10": (
        b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", refused(400),
    ),
    "te-space-before-colon": (post(b"Transfer-Encoding : chunked", body=b"0\r\n\r\n"), refused(400)),
    "te-uppercase": (
        post(b"Transfer-Encoding: CHUNKED", body=b"1\r\na\r\n0\r\n\r\n"),
        served(seen("POST", headers=TE_SEEN, body=b"a")),
    ),
    "te-whitespace-around-value": (
        post(b"Transfer-Encoding:\t chunked  ", body=b"1\r\na\r\n0\r\n\r\n"),
        served(seen("POST", headers=TE_SEEN, body=b"a")),
    ),
    # OWS may be HTAB, but llhttp reads `chunked` then HTAB as another coding.
    "te-chunked-then-tab": (post(b"Transfer-Encoding: chunked\t", body=b"0\r\n\r\n"), refused(400)),
    # -- chunked bodies ------------------------------------------------------------------------
    "chunk-size-2^64": (chunked(b"10000000000000001\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-size-2^64-1": (chunked(b"ffffffffffffffff\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-size-17-digits-with-zeros": (chunked(b"00000000000000001\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-size-negative": (chunked(b"-1\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-size-0x": (chunked(b"0x1\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-size-not-hex": (chunked(b"zz\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-size-underscore": (chunked(b"1_0\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n"), refused(400)),
    "chunk-size-plus": (chunked(b"+1\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-size-empty": (chunked(b"\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-size-then-space": (chunked(b"1 \r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-size-after-space": (chunked(b" 1\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-extension-bws": (chunked(b"1 ;a=b\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-extension-control": (chunked(b"1;a\x01b\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-extension-bare-cr": (chunked(b"1;a\rb\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-extension-bare-lf": (chunked(b"1;a\nb\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-extension-empty-name": (chunked(b"1;=b\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-extension-unterminated-quote": (chunked(b'1;a="b\r\na\r\n0\r\n\r\n'), refused(400)),
    "chunk-line-over-4k": (chunked(b"1;a=" + b"b" * 5000 + b"\r\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-size-ends-in-bare-lf": (chunked(b"1\na\r\n0\r\n\r\n"), refused(400)),
    "chunk-data-too-long": (chunked(b"1\r\naXY\r\n0\r\n\r\n"), refused(400)),
    "chunk-data-then-bare-lf": (chunked(b"1\r\na\n0\r\n\r\n"), refused(400)),
    "last-chunk-bare-lf": (chunked(b"1\r\na\r\n0\n\n"), refused(400)),
    "chunk-extensions-valid": (
        chunked(b'1;a=b;c="d \\" e"\r\na\r\nA;x\r\n0123456789\r\n0;end\r\n\r\n'),
        served(seen("POST", headers=TE_SEEN, body=b"a0123456789")),
    ),
    "chunk-sizes-upper-hex-and-zeros": (
        chunked(b"001A\r\n" + b"z" * 26 + b"\r\n000\r\n\r\n"),
        served(seen("POST", headers=TE_SEEN, body=b"z" * 26)),
    ),
    # -- trailers: checked like header lines, never shown to the app -------------------------
    "trailer-control": (chunked(b"0\r\nX-T: a\x01b\r\n\r\n"), refused(400)),
    "trailer-obs-fold": (chunked(b"0\r\nX-T: a\r\n b\r\n\r\n"), refused(400)),
    "trailer-bare-lf": (chunked(b"0\r\nX-T: a\n\r\n"), refused(400)),
    "trailer-space-before-colon": (chunked(b"0\r\nX-T : a\r\n\r\n"), refused(400)),
    "trailer-content-length": (chunked(b"0\r\nContent-Length: 5\r\n\r\n"), refused(400)),
    "trailer-transfer-encoding": (chunked(b"0\r\nTransfer-Encoding: chunked\r\n\r\n"), refused(400)),
    "trailer-host": (chunked(b"0\r\nHost: y\r\n\r\n"), refused(400)),
    "trailer-over-32k": (chunked(b"0\r\nX-T: " + b"t" * 33_000 + b"\r\n\r\n"), refused(431)),
    "trailer-valid": (
        chunked(b"1\r\na\r\n0\r\nX-T: t\r\n\r\n"), served(seen("POST", headers=TE_SEEN, body=b"a")),
    ),
    # -- framing across requests ---------------------------------------------------------------
    "pipelined-then-bad-request-line": (
        get(b"GET /1 HTTP/1.1") + get(b"GET  /2 HTTP/1.1"), refused(400, seen(raw_path=b"/1")),
    ),
    "chunked-then-bad-request-line": (
        chunked(b"1\r\na\r\n0\r\n\r\n") + get(b"get /2 HTTP/1.1"),
        refused(501, seen("POST", headers=TE_SEEN, body=b"a")),
    ),
    "stray-crlf-after-body": (
        post(b"Content-Length: 1", body=b"a") + b"\r\n" + get(b"GET /2 HTTP/1.1"),
        refused(400, seen("POST", headers=[*HOST, (b"content-length", b"1")], body=b"a")),
    ),
    "body-longer-than-content-length": (
        post(b"Content-Length: 1", body=b"ab\r\n\r\n"),
        refused(400, seen("POST", headers=[*HOST, (b"content-length", b"1")], body=b"a")),
    ),
    "get-with-body": (
        get(b"GET / HTTP/1.1", b"Content-Length: 2") + b"hi",
        served(seen(headers=[*HOST, (b"content-length", b"2")], body=b"hi")),
    ),
    "underscore-transfer-encoding-is-another-field": (
        post(b"Transfer_Encoding: chunked", body=b"0\r\n\r\n"),
        refused(400, seen("POST", headers=[*HOST, (b"transfer_encoding", b"chunked")])),
    ),
    "connection-close-then-garbage": (
        get(b"GET / HTTP/1.1", b"Connection: close") + b"GARBAGE\r\n\r\n",
        served(seen(headers=[*HOST, (b"connection", b"close")]), closes=True),
    ),
    # A protocol switch request that is not switched is the last on its connection, and has
    # no body: llhttp reads its body as the new protocol's bytes, h11 as a body.
    "upgrade-not-switched-then-request": (
        get(b"GET /u HTTP/1.1", b"Upgrade: foo", b"Connection: upgrade") + get(b"GET /2 HTTP/1.1"),
        served(seen(raw_path=b"/u", headers=[*HOST, (b"upgrade", b"foo"), (b"connection", b"upgrade")]),
               closes=True),
    ),
    "upgrade-not-switched-with-body": (
        post(b"Upgrade: foo", b"Connection: upgrade", b"Content-Length: 4", body=b"GET "), refused(400),
    ),
    "upgrade-without-connection-is-plain": (
        get(b"GET /u HTTP/1.1", b"Upgrade: foo") + get(b"GET /2 HTTP/1.1"),
        served(seen(raw_path=b"/u", headers=[*HOST, (b"upgrade", b"foo")]), seen(raw_path=b"/2")),
    ),
    "websocket-handshake-with-body": (
        get(b"GET /ws HTTP/1.1", b"Upgrade: websocket", b"Connection: Upgrade",
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Version: 13",
            b"Content-Length: 2") + b"hi",
        refused(400),
    ),
}
