#!/usr/bin/env bash
# Build gateway's C extensions with AddressSanitizer and libFuzzer's coverage hooks into
# $FUZZ_DIR/build (default /tmp/gateway-fuzz/build), outside the source tree. The harnesses
# load them from there; the rest of gateway comes from this repository.
# Usage: [FUZZ_DIR=...] [PYTHON=...] fuzz/build.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
build=${FUZZ_DIR:-/tmp/gateway-fuzz}/build

"$python" -c 'import atheris' 2>/dev/null || {
    echo "$python has no atheris: see fuzz/README.md for the setup" >&2
    exit 1
}
include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')

# -shared without the ASan runtime: run.sh preloads atheris's copy of it, with libFuzzer.
flags=(-fsanitize=address,fuzzer-no-link -g -O1 -fno-omit-frame-pointer -fwrapv -fPIC -shared
       -Wall -I"$include")

mkdir -p "$build/gateway/h1" "$build/gateway/ws"
clang "${flags[@]}" "$repo/gateway/h1/_wire.c" -o "$build/gateway/h1/_wire$suffix"
clang "${flags[@]}" "$repo/gateway/_accessline.c" -o "$build/gateway/_accessline$suffix"
clang "${flags[@]}" "$repo/gateway/ws/_frames.c" -o "$build/gateway/ws/_frames$suffix"
echo "built into $build"
