#!/usr/bin/env bash
# Prepare the benchmark environment. Safe to run repeatedly.
#
# The peer servers live in their own venv (bench/.venv) so that their
# dependencies never leak into the project's own environment, and so that
# every server in a run is started from the same interpreter.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="$here/.venv"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi

"$venv/bin/python" -m pip install --quiet --upgrade pip
# zttp: uvicorn's experimental HTTP/2 (`--http zttp --http2`) for the h2 rows.
"$venv/bin/python" -m pip install --quiet --upgrade \
    'uvicorn[standard]' zttp hypercorn granian 'gunicorn[fast,http2]>=25' trustme

# The gateway itself, editable, so the benchmark always runs the work tree.
if [ -f "$root/pyproject.toml" ]; then
    "$venv/bin/python" -m pip install --quiet -e "$root[standard]"
fi

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
