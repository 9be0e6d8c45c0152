#!/usr/bin/env bash
# bench_smoke (ctest): bench/run.sh --quick against the binaries in $1, then
# checks the raw figures: every stream of every run connected and stayed up,
# nothing lost, nothing duplicated, every event parsed, the start-up
# scenario became ready. Prints the table, then one line per failed check.
set -euo pipefail
bin=${1:?usage: smoke.sh BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/statecast-bench-smoke.XXXXXX")
trap 'rm -rf "$out"' EXIT
BENCH_BIN_DIR=$bin BENCH_OUT_DIR=$out BENCH_NCHAN=${BENCH_NCHAN:-0} "$here/run.sh" --quick
kv=$out/results-quick.kv
[[ -s $kv ]] || { echo "FAIL: no results"; exit 1; }

fails=0 checks=0
check() { # description, condition
  checks=$((checks + 1))
  if ! eval "$2"; then
    echo "FAIL: $1"
    fails=$((fails + 1))
  fi
}
val() { sed -n "s/^$1=//p" "$kv" | tail -1; }
runs=$(sed -n 's/^\([a-z_]*\)\.streams=.*/\1/p' "$kv")
[[ -n $runs ]] || { echo "FAIL: no stream runs in $kv"; exit 1; }
for r in $runs; do
  n=$(val "$r.streams")
  check "$r: all $n streams connected (got $(val "$r.connected"))" "[[ $(val "$r.connected") == $n && $(val "$r.failed") == 0 ]]"
  check "$r: no stream dropped (got $(val "$r.disconnected"))" "[[ $(val "$r.disconnected") == 0 ]]"
  check "$r: published messages" "(( $(val "$r.published") > 0 && $(val "$r.publish_errors") == 0 ))"
  check "$r: zero loss (lost $(val "$r.lost") of $(val "$r.expected"))" "[[ $(val "$r.lost") == 0 && $(val "$r.expected") -gt 0 ]]"
  check "$r: every expected event arrived once (events $(val "$r.events"), expected $(val "$r.expected"))" "[[ $(val "$r.events") == $(val "$r.expected") ]]"
  check "$r: zero duplicates (got $(val "$r.dups"))" "[[ $(val "$r.dups") == 0 ]]"
  check "$r: every event parsed (unparsed $(val "$r.unparsed"))" "[[ $(val "$r.unparsed") == 0 ]]"
  check "$r: delay measured" "(( $(val "$r.delay_p99_us") > 0 ))"
done
check "a: RSS per idle stream measured" "[[ -n \"$(val a_idle_fan_big.rss_per_stream_bytes)\" ]]"
check "b: fan-out figure for every single message" "[[ $(val b_fan_mid.fanout_complete) == $(val b_fan_mid.published) ]]"
check "f: apiserver became ready" "[[ -n \"$(val f.ready_seconds)\" ]]"
echo "$((checks - fails)) passed, $fails failed"
[[ $fails == 0 ]]
