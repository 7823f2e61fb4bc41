"""The access line AccessLog writes around logging's records (logs.py: `format_entry`, and
`format_response` from a response's facts without an entry) is the line the same formatter
makes of the record the standard path would hand it: for gateway's own format,
`--access-log-format`, a refused request, a WebSocket session, with and without colours, and
as JSON. Only the time may differ (the record's clock is read a moment apart)."""

from __future__ import annotations

import json
import logging
import re

import pytest

from gateway.access import AccessFormat, HTTPEntry, WebSocketEntry
from gateway.logs import ColourFormatter, JSONFormatter, TextFormatter, access_logger

SCOPE = {
    "type": "http", "http_version": "1.1", "client": ("203.0.113.9", 51234), "method": "GET",
    "raw_path": b"/caf%C3%A9/x", "query_string": b"q=1&r=%20", "scheme": "https",
    "headers": [(b"user-agent", b"curl/8"), (b"referer", b"http://r/\xe9")],
    "extensions": {"tls": {}},
}
WS_SCOPE = {**SCOPE, "type": "websocket", "http_version": "2"}
CUSTOM = '%(h)s %(l)s "%(r)s" %(s)s %(b)s %(P)s %(S)s "%({user-agent}i)s" %(M)s'


def entries() -> list[HTTPEntry | WebSocketEntry]:
    own, custom = AccessFormat(None), AccessFormat(CUSTOM)
    headers = [(b"content-type", b"text/plain")]
    return [
        HTTPEntry(own, SCOPE, 200, 5, 0.0123, 0, headers),
        HTTPEntry(own, {**SCOPE, "http_version": "2"}, 404, 0, 1.5, 7, headers),
        HTTPEntry(own, {"client": ("::1", 4)}, 400, None, 0.0, 0, ()),
        HTTPEntry(custom, SCOPE, 503, 19, 0.25, 3, headers),
        HTTPEntry(custom, {"client": None}, 431, None, 0.0, 0, ()),
        WebSocketEntry(WS_SCOPE, 5, 2.5, 3, 30, 4, 40, 1000, "client"),
    ]


def direct_lines(formatter: logging.Formatter, entry: HTTPEntry | WebSocketEntry) -> list[str]:
    """The line from the entry, and for a response, from its facts alone."""
    lines = [formatter.format_entry(entry)]  # type: ignore[attr-defined]
    if isinstance(entry, HTTPEntry):
        lines.append(formatter.format_response(  # type: ignore[attr-defined]
            entry.form, entry.scope, entry.status, entry.size, entry.seconds, entry.stream_id,
            entry.response_headers))
    return lines


def standard_line(formatter: logging.Formatter, entry: HTTPEntry | WebSocketEntry) -> str:
    record = access_logger.makeRecord(access_logger.name, logging.INFO, "(access)", 0, entry, (), None)
    return formatter.format(record) + "\n"


TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
ISO_UTC_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.mark.parametrize("formatter", [TextFormatter(), ColourFormatter(access=True),
                                       ColourFormatter(access=False)],
                         ids=["text", "colour", "colour-level-only"])
def test_text_lines_match_the_standard_path(formatter):
    for entry in entries():
        standard = standard_line(formatter, entry)
        for direct in direct_lines(formatter, entry):
            assert TIME.sub("", direct) == TIME.sub("", standard)
            assert direct.endswith("\n") and direct.count("\n") == 1


def test_json_lines_match_the_standard_path():
    formatter = JSONFormatter()
    for entry in entries():
        standard = json.loads(standard_line(formatter, entry))
        assert ISO_UTC_MS.fullmatch(standard.pop("time"))
        for line in direct_lines(formatter, entry):
            direct = json.loads(line)
            assert ISO_UTC_MS.fullmatch(direct.pop("time"))
            assert direct == standard
