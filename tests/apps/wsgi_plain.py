"""A WSGI app with no framework, a plain function of (environ, start_response), served by
`gateway --interface wsgi --app-dir tests/apps wsgi_plain:app` in tests/test_wsgi.py.

`/slow` holds its thread for a while and answers how many requests the app has had running at
once at most (`/stuck` the same, a minute later); `/forever` streams until the client goes away
and counts the streams it ended; `/ended` answers that count."""

from __future__ import annotations

import threading
import time

_lock = threading.Lock()
_running = 0
_peak = 0
_streams_ended = 0


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        return _respond(start_response, str(_hold(0.3)))
    if path == "/stuck":
        return _respond(start_response, str(_hold(60)))
    if path == "/ended":
        return _respond(start_response, str(_streams_ended))
    if path == "/forever":
        start_response("200 OK", [("content-type", "text/plain")])
        return _forever()
    start_response("404 Not Found", [("content-type", "text/plain")])
    return [b"not found\n"]


def _respond(start_response, text: str) -> list[bytes]:
    body = text.encode()
    start_response("200 OK", [("content-type", "text/plain"), ("content-length", str(len(body)))])
    return [body]


def _hold(seconds: float) -> int:
    global _running, _peak
    with _lock:
        _running += 1
        _peak = max(_peak, _running)
    time.sleep(seconds)
    with _lock:
        _running -= 1
        return _peak


def _forever():
    global _streams_ended
    try:
        while True:
            yield b"tick\n"
            time.sleep(0.01)
    finally:
        with _lock:
            _streams_ended += 1
