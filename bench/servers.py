"""How each server is started for each row, and the rows a server cannot take part in.

Every command runs from a bench venv (``Launch.bin_dir``: bench/.venv, or bench/.venv-3.13
for ``--python 3.13``), so every server of a column sees the same interpreter and app.
The flags that differ per row are read from the scenario: HTTP/2 on, the WebSocket
implementation, the worker count, the access log (``h1-log``: each server's own default
logging, so its default log level too), and long keep-alive limits for the idle rows.
"""

from __future__ import annotations

from dataclasses import replace

from bench.model import APP, BENCH_DIR, Launch, Scenario, Server, version_venv_bin

# Extra gateway flags from --gateway-args (e.g. "--http h11"), to compare its own options.
GATEWAY_EXTRA: list[str] = []

# Idle rows (memory): connections are opened over several seconds and must all be open when
# the server's RSS is read, so no server may close them for being idle before that.
IDLE_KEEP_ALIVE = "600"


def exe(launch: Launch, name: str) -> str:
    return str(launch.bin_dir / name)


def gateway_cmd(launch: Launch) -> list[str]:
    sc, tls = launch.scenario, launch.tls
    # --workers 1 (the default) runs in one process; more start a supervisor, whose workers
    # (subprocess, no new session) stay in its process group.
    cmd = [exe(launch, "python"), "-m", "gateway", "--bind", f"127.0.0.1:{launch.port}",
           "--workers", str(sc.workers)]
    if not sc.access_log:
        cmd.append("--no-access-log")   # on by default, to stderr, at the default level (info)
    if sc.idle:
        cmd += ["--keep-alive-timeout", IDLE_KEEP_ALIVE]
    if tls:
        cmd += ["--certfile", str(tls.cert), "--keyfile", str(tls.key)]
    return [*cmd, *GATEWAY_EXTRA, APP]


def uvicorn_cmd(launch: Launch) -> list[str]:
    sc, tls = launch.scenario, launch.tls
    # HTTP/2 is experimental in uvicorn and only with the zttp protocol (pip install zttp):
    # `--http zttp --http2` serves h2 by ALPN, h2c by prior knowledge, and HTTP/1.1.
    http = ["--http", "zttp", "--http2"] if sc.http2 else ["--http", "httptools"]
    cmd = [exe(launch, "uvicorn"), APP, "--host", "127.0.0.1", "--port", str(launch.port),
           *http, "--loop", "uvloop",
           # 1 runs in one process; more start uvicorn's multiprocess supervisor.
           "--workers", str(sc.workers)]
    if not sc.access_log:
        # Its access log is on by default, at level info on the uvicorn.access logger.
        cmd += ["--no-access-log", "--log-level", "warning"]
    if sc.idle:
        cmd += ["--timeout-keep-alive", IDLE_KEEP_ALIVE]
    if sc.websocket:
        # uvicorn 0.54 offers websockets (the legacy websockets.legacy protocol),
        # websockets-sansio and wsproto; --ws auto picks websockets-sansio when the
        # websockets package is installed. Spelled out, so that the row says what it is.
        cmd += ["--ws", "websockets-sansio"]
    if tls:
        cmd += ["--ssl-certfile", str(tls.cert), "--ssl-keyfile", str(tls.key)]
    return cmd


def uvicorn_supports(scenario: Scenario) -> str:
    if scenario.http2 and scenario.websocket:
        return "its HTTP/2 (zttp) carries no WebSocket (no RFC 8441)"
    return ""


def hypercorn_cmd(launch: Launch) -> list[str]:
    sc, tls = launch.scenario, launch.tls
    # h2 by ALPN and h2c by prior knowledge are on by default; it closes a connection
    # after 1,000 requests (keep_alive_max_requests), h2 streams included.
    # --workers 1 is its default: a parent process plus one worker.
    cmd = [exe(launch, "hypercorn"), APP, "--bind", f"127.0.0.1:{launch.port}",
           "--workers", str(sc.workers)]
    if sc.access_log:
        # Off by default; `-` is stdout. Its access logger takes the log level, whose
        # default (info) is the level access lines are written at.
        cmd += ["--access-logfile", "-"]
    else:
        cmd += ["--log-level", "warning"]
    if sc.idle:
        # Its backlog defaults to 100, above the idle client's connects in progress (64).
        cmd += ["--keep-alive", IDLE_KEEP_ALIVE]
    if tls:
        cmd += ["--certfile", str(tls.cert), "--keyfile", str(tls.key)]
    return cmd


def granian_cmd(launch: Launch) -> list[str]:
    sc, tls = launch.scenario, launch.tls
    cmd = [exe(launch, "granian"), "--interface", "asgi", "--host", "127.0.0.1",
           "--port", str(launch.port), "--workers", str(sc.workers)]
    if sc.access_log:
        cmd += ["--access-log"]   # off by default; the default format, at the default level
    else:
        cmd += ["--no-access-log", "--log-level", "warning"]
    if sc.idle:
        # No keep-alive idle timeout to raise; the head read timeout is at its most (60 s).
        # --backpressure (default: backlog / workers, 1,024) also caps the connections held:
        # past it, idle ones are closed.
        cmd += ["--http1-header-read-timeout", "60000",
                "--backpressure", str(launch.options.memory_connections + 100)]
    if sc.http2:
        # auto (the default, spelled out): h2 by ALPN or h2c preface, else HTTP/1.1.
        # `--http 2` would refuse the HTTP/1.1 readiness probe.
        cmd += ["--http", "auto"]
    if sc.websocket:
        cmd += ["--ws"]   # the default (enabled), spelled out
    if tls:
        # granian reads only PKCS#8 keys; the run's key is written that way for everyone.
        cmd += ["--ssl-certificate", str(tls.cert), "--ssl-keyfile", str(tls.key)]
    return [*cmd, APP]


def granian_supports(scenario: Scenario) -> str:
    if scenario.http2 and scenario.websocket:
        return "no RFC 8441: its h2c SETTINGS have no ENABLE_CONNECT_PROTOCOL"
    if scenario.deflate:
        return "no permessage-deflate: it answers the offer without the extension"
    return ""


def gunicorn_cmd(launch: Launch) -> list[str]:
    sc, tls = launch.scenario, launch.tls
    # gunicorn's native asgi worker (25+). Ask for the C parser (gunicorn[fast]) and
    # uvloop explicitly: the defaults ("auto") silently fall back to slower ones.
    # gunicorn 26 also opens a control socket in ~/.gunicorn/ by default; not wanted here.
    # WebSocket: the asgi worker has its own RFC 6455 code (gunicorn/asgi/websocket.py),
    # always on, without flags (and without permessage-deflate).
    cmd = [exe(launch, "gunicorn"), "-k", "asgi", "-w", str(sc.workers),
           "-b", f"127.0.0.1:{launch.port}", "--http-parser", "fast", "--asgi-loop", "uvloop",
           "--no-control-socket"]
    if sc.access_log:
        cmd += ["--access-logfile", "-"]   # off by default; `-` is stdout, default format
    else:
        cmd += ["--log-level", "warning"]
    if sc.idle:
        # --worker-connections (default 1,000) caps the connections one worker holds.
        cmd += ["--keep-alive", IDLE_KEEP_ALIVE,
                "--worker-connections", str(launch.options.memory_connections + 100)]
    if sc.http2:
        # HTTP/2 in gunicorn is beta. h2c needs its own flag and is only offered to peers in
        # --forwarded-allow-ips (default 127.0.0.1). "both" rather than "prior-knowledge":
        # prior knowledge alone answers the HTTP/1.1 readiness probe with 400.
        cmd += ["--http-protocols", "h2,h1"]
        if not tls:
            cmd += ["--http2-cleartext", "both"]
    if tls:
        cmd += ["--certfile", str(tls.cert), "--keyfile", str(tls.key)]
    return [*cmd, APP]


def gunicorn_supports(scenario: Scenario) -> str:
    if scenario.http2 and scenario.websocket:
        return "its HTTP/2 has no extended CONNECT (RFC 8441)"
    if scenario.deflate:
        return "no permessage-deflate in its asgi worker's WebSocket code"
    return ""


def ceiling_cmd(launch: Launch) -> list[str]:
    cmd = [exe(launch, "python"), str(BENCH_DIR / "ceiling.py"), "--port", str(launch.port)]
    if launch.tls:
        cmd += ["--certfile", str(launch.tls.cert), "--keyfile", str(launch.tls.key)]
    return cmd


def ceiling_supports(scenario: Scenario) -> str:
    if scenario.websocket and not scenario.deflate and not scenario.http2:
        return ""  # the plain echo
    if not scenario.canned or scenario.workers != 1:
        return "the ceiling answers GET / with canned bytes, and echoes WebSocket frames, only"
    return ""


SERVERS = [
    Server("gateway", "gateway", gateway_cmd),
    Server("uvicorn", "uvicorn", uvicorn_cmd, uvicorn_supports),
    Server("hypercorn", "hypercorn", hypercorn_cmd),
    Server("granian", "granian", granian_cmd, granian_supports),
    Server("gunicorn", "gunicorn", gunicorn_cmd, gunicorn_supports),
    Server("ceiling", "uvloop", ceiling_cmd, ceiling_supports),
]


def with_pythons(servers: list[Server], versions: list[str]) -> list[Server]:
    """Each server, followed by its twin from bench/.venv-VERSION for every ``--python``.

    ``gateway@3.13`` sits beside ``gateway`` in every table; a twin whose venv was never
    built is skipped with the setup.sh command that builds it.
    """
    out: list[Server] = []
    for server in servers:
        out.append(server)
        out += [replace(server, name=f"{server.name}@{version}", bin_dir=version_venv_bin(version),
                        python=version) for version in versions]
    return out
