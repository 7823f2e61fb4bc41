#!/usr/bin/env bash
# Prepare the benchmark environment. Safe to run repeatedly.
#
#   bash bench/setup.sh          bench/.venv (the default interpreter), wrk, h2load, ws_load
#   bash bench/setup.sh 3.13     also bench/.venv-3.13, the same servers on Python 3.13, for
#                                `run.py --python 3.13` (from ~/.pyenv/versions/3.13.*, else
#                                python3.13 on PATH)
#
# The peer servers live in their own venv so that their dependencies never leak into the
# project's own environment, and so that every server in a column is started from the same
# interpreter.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
version="${1:-}"

# Every server of the benchmark, and the gateway itself, editable, so the benchmark always
# runs the work tree. zttp: uvicorn's experimental HTTP/2 (`--http zttp --http2`).
install_servers() {
    local venv="$1"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet --upgrade \
        'uvicorn[standard]' zttp hypercorn granian 'gunicorn[fast,http2]>=25' trustme
    if [ -f "$root/pyproject.toml" ]; then
        "$venv/bin/python" -m pip install --quiet -e "$root[standard]"
    fi
}

if [ -n "$version" ]; then
    python="$( (ls -d "$HOME/.pyenv/versions/$version".* 2>/dev/null || true) | sort -V | tail -n 1)"
    python="${python:+$python/bin/python$version}"
    [ -x "${python:-}" ] || python="$(command -v "python$version" || true)"
    if [ -z "$python" ]; then
        echo "no Python $version: neither ~/.pyenv/versions/$version.* nor python$version" >&2
        exit 1
    fi
    venv="$here/.venv-$version"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    install_servers "$venv"
    echo "bench environment for Python $version ready: $venv"
    exit 0
fi

venv="$here/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
install_servers "$venv"

# Load generators from Debian: wrk for HTTP/1.1, h2load (nghttp2-client) for HTTP/2;
# gcc, the libc and zlib headers to build the WebSocket one (build-essential is not a given;
# zlib for its --deflate mode).
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[ -f /usr/include/x86_64-linux-gnu/sys/epoll.h ] || [ -f /usr/include/sys/epoll.h ] \
    || missing+=(libc6-dev)
[ -f /usr/include/zlib.h ] || missing+=(zlib1g-dev)
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }
fi

# The WebSocket echo load generator (one thread, epoll), into the venv next to the
# servers; rebuilt whenever the source is newer than the binary.
ws_load="$venv/bin/ws_load"
if [ "$here/ws_load.c" -nt "$ws_load" ]; then
    gcc -O2 -Wall -Wextra -o "$ws_load.tmp" "$here/ws_load.c" -lz
    mv "$ws_load.tmp" "$ws_load"
fi

echo "bench environment ready: $venv (ws_load: $ws_load)"
