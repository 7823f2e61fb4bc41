#!/usr/bin/env bash
# Run one harness under libFuzzer for SECONDS, or replay one input FILE (a crash file).
# Usage: [FUZZ_DIR=...] [PYTHON=...] fuzz/run.sh parse_head|frame_headers|access_line|make_scope|ws_frames SECONDS|FILE [libFuzzer flags...]
# The corpus grows in $FUZZ_DIR/corpus/NAME across runs; crash files go to $FUZZ_DIR/artifacts/NAME.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
export FUZZ_DIR=${FUZZ_DIR:-/tmp/gateway-fuzz}
name=${1:?harness: parse_head, frame_headers, access_line, make_scope or ws_frames}
what=${2:?seconds to run, or an input file to replay}
shift 2
harness=$here/fuzz_$name.py
[[ -f $harness ]] || { echo "no harness $harness" >&2; exit 2; }

# libFuzzer and the ASan runtime, as one library, come with atheris; the instrumented extensions
# need them loaded first. Python's own allocator is bypassed so that ASan sees its objects.
atheris_dir=$("$python" -c 'import atheris, os; print(os.path.dirname(os.path.dirname(atheris.__file__)))')
export LD_PRELOAD=$atheris_dir/asan_with_fuzzer.so
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1
export PYTHONMALLOC=malloc

if [[ -f $what ]]; then
    exec "$python" "$harness" "$@" "$what"
fi

corpus=$FUZZ_DIR/corpus/$name
seeds=$FUZZ_DIR/seeds/$name
artifacts=$FUZZ_DIR/artifacts/$name
mkdir -p "$corpus" "$artifacts"
rm -rf "$seeds"
"$python" "$harness" --seeds "$seeds"

flags=(-max_total_time="$what" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1
       -artifact_prefix="$artifacts/")
case $name in
    parse_head) flags+=(-max_len=4096 -dict="$here/parse_head.dict") ;;
    *) flags+=(-max_len=2048) ;;
esac
exec "$python" "$harness" "${flags[@]}" "$@" "$corpus" "$seeds"
