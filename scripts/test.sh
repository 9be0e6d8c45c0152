#!/usr/bin/env bash
# Installs what the tests need, builds statecast twice (normal, and with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs the whole test suite
# in both builds, then runs the integration suites once more against
# ThreadSanitizer builds of the binaries (Criterion's own fork machinery
# does not run under TSan, so the test programs stay uninstrumented; every
# thread lives in the binaries). .ci/run calls exactly this.
#   scripts/test.sh            everything
#   STATECAST_TEST_BUILDS="build" scripts/test.sh   only the normal build
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --test
scripts/install-browser-deps.sh
scripts/install-k8s-tools.sh
scripts/install-fuzz-deps.sh

# A test that crashes cannot stop what it started (each server runs in its
# own process group); sweep such leftovers when the run ends.
cleanup() {
  for pid in $(pgrep -f statecast- 2>/dev/null); do
    case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
      "$PWD"/build*/bin/statecast-*) kill "$pid" 2>/dev/null || true ;;
    esac
  done
  for pid in $(pgrep -x redis-server 2>/dev/null) $(pgrep -x redis-sentinel 2>/dev/null); do
    case "$(readlink "/proc/$pid/cwd" 2>/dev/null)" in
      /tmp/statecast-test-*) kill "$pid" 2>/dev/null || true ;;
    esac
  done
}
trap cleanup EXIT

builds=${STATECAST_TEST_BUILDS:-"build build-asan"}
jobs=$(nproc)
status=0
for b in $builds; do
  flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTATECAST_SANITIZE=OFF)
  [[ "$b" == build-asan ]] && flags=(-DCMAKE_BUILD_TYPE=Debug -DSTATECAST_SANITIZE=ON)
  echo "=== $b: configure and build"
  cmake -S . -B "$b" "${flags[@]}" >/dev/null
  cmake --build "$b" -j"$jobs"
  echo "=== $b: test"
  # Sanitizer builds: fail on any leak or UB report.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  if ! ctest --test-dir "$b" --output-on-failure -j"$jobs" --timeout 600; then
    status=1
  fi
done
if [[ " $builds " == *" build "* && -z "${STATECAST_SKIP_TSAN:-}" ]]; then
  echo "=== build-tsan: the binaries with ThreadSanitizer"
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSTATECAST_TSAN=ON -DSTATECAST_TESTS=OFF >/dev/null
  cmake --build build-tsan -j"$jobs"
  echo "=== build-tsan: integration suites against the TSan binaries"
  # Every report also lands in $tsan_dir: any file there fails the run,
  # whether or not the suite looked at the binary's exit status.
  tsan_dir=$(mktemp -d /tmp/statecast-tsan.XXXXXX)
  if ! STATECAST_TEST_BIN_DIR="$PWD/build-tsan/bin" TSAN_OPTIONS="halt_on_error=1 exitcode=66 log_path=$tsan_dir/report" \
      ctest --test-dir build -L integration --output-on-failure -j"$jobs" --timeout 900; then
    status=1
  fi
  if compgen -G "$tsan_dir/report*" >/dev/null; then
    echo "ThreadSanitizer reports:"
    cat "$tsan_dir"/report*
    status=1
  fi
  rm -rf "$tsan_dir"
fi
echo "=== fuzz: short run of every target"
scripts/fuzz.sh "${STATECAST_FUZZ_SECONDS:-10}" || status=1
exit $status
