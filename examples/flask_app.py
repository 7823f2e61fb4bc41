"""A Flask app served by gateway through its WSGI adapter:

    pip install 'gateway[wsgi]' flask
    gateway --interface wsgi --dev-tls --app-dir examples flask_app:app

Each request runs on one of --wsgi-threads threads (default 10), over HTTP/1.1 or HTTP/2."""

from __future__ import annotations

import hashlib
import time

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "Hello from Flask\n"


@app.post("/echo")
def echo() -> Response:
    body = request.get_data()
    return jsonify(length=len(body), sha256=hashlib.sha256(body).hexdigest(),
                   type=request.content_type)


@app.get("/stream")
def stream() -> Response:
    """A response sent as the generator yields it, not gathered first."""
    count = request.args.get("count", 5, type=int)
    pause = request.args.get("pause", 0.0, type=float)

    def lines():
        for number in range(count):
            yield f"line {number}\n"
            time.sleep(pause)

    return Response(lines(), mimetype="text/plain")


@app.get("/environ")
def environ() -> Response:
    """What the WSGI environ says about this request."""
    keys = ("SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "SCRIPT_NAME",
            "PATH_INFO", "QUERY_STRING", "HTTP_X_CUSTOM", "wsgi.url_scheme")
    return jsonify({key: request.environ.get(key) for key in keys} | {"url": request.url})
