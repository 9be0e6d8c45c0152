#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz and runs each one for
# a while over its seed corpus (tests/fuzz/corpus/<target>/, copied, never
# written). Exits non-zero when a target crashes, leaks or breaks an invariant;
# the reproducer is build-fuzz/fuzz/crash-* (run: build-fuzz/fuzz/fuzz_X FILE).
#   scripts/fuzz.sh            every target 10 s (the test suite's short run)
#   scripts/fuzz.sh 600        every target 10 minutes
#   scripts/fuzz.sh 60 config  one target (message, config, pattern, resume_id)
# Needs clang + libclang-rt-14-dev: scripts/install-fuzz-deps.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-10}"
only="${2:-}"
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"

command -v clang >/dev/null || { echo "fuzz.sh: clang not found (run scripts/install-fuzz-deps.sh)" >&2; exit 2; }
cmake -S "$root/tests/fuzz" -B "$build" -DCMAKE_C_COMPILER=clang -DSTATECAST_FUZZ_SECONDS="$seconds" >/dev/null
cmake --build "$build" -j2 >/dev/null
if [[ -n "$only" ]]; then
  ctest --test-dir "$build" --output-on-failure -R "^fuzz_${only}\$"
else
  ctest --test-dir "$build" --output-on-failure
fi
