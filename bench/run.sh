#!/usr/bin/env bash
# bench/run.sh: the statecast benchmark in one command (see bench/README.md).
#
# Builds the binaries (RelWithDebInfo, build dir build-bench-run), starts a
# private redis-server on a free loopback port (own temp dir), kv-updater and
# a fresh apiserver per scenario, the physical floor (statecast-floor) and,
# when nginx + libnginx-mod-nchan are installed, Nchan; runs scenarios a-f,
# prints one markdown results table and writes it (and every raw figure) to
# $BENCH_OUT_DIR. Every process it starts is stopped by pid on exit, also on
# failure or Ctrl-C.
#
#   bench/run.sh            full scale (19,000 / 10,000 streams, 30 s windows; ~8 min)
#   bench/run.sh --quick    tiny scale (200 streams, 3 s windows, 1,000 topics)
#
# Environment knobs (all optional):
#   BENCH_QUICK=1             same as --quick
#   BENCH_BIN_DIR=DIR         use the binaries in DIR, do not build
#   BENCH_BUILD_DIR=DIR       build here (default: build-bench-run)
#   BENCH_OUT_DIR=DIR         results (default: bench/results; quick: a temp dir)
#   BENCH_N_BIG / BENCH_N_MID streams for a, b(19k), d / b(10k), c, e (19000 / 10000)
#   BENCH_WINDOW_S            publishing window of c, d, e in seconds (30)
#   BENCH_SINGLES             single messages of the fan-out figure (10, 1 s apart)
#   BENCH_SINGLE_GAP_MS       gap between them (1000)
#   BENCH_FILL_TOPICS / BENCH_FILL_BYTES  start-up scenario (100000 / 1024)
#   BENCH_DRAIN_MS            wait for streams to catch up after a window (10000)
#   BENCH_NCHAN=auto|0|1      run the Nchan comparison (auto: when installed; --quick: 0)
#   BENCH_FLOOR=1|0           run the floor (1)
#   BENCH_FLOOR_THREADS       statecast-floor threads (2)
#   BENCH_MAX_STREAMS         apiserver --max-streams (19500)
#   BENCH_SCENARIOS           which to run, e.g. "a b c" (default "a b c d e f")
#   BENCH_KEEP_TMP=1          keep the temp dir (logs, raw figures) also after success
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

quick=${BENCH_QUICK:-0}
for arg in "$@"; do
  case $arg in
  --quick) quick=1 ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "bench/run.sh: unknown argument $arg (see --help)" >&2
    exit 2
    ;;
  esac
done

if [[ $quick == 1 ]]; then
  n_big=${BENCH_N_BIG:-200} n_mid=${BENCH_N_MID:-200} window=${BENCH_WINDOW_S:-3}
  singles=${BENCH_SINGLES:-3} single_gap=${BENCH_SINGLE_GAP_MS:-300}
  fill_topics=${BENCH_FILL_TOPICS:-1000} drain_ms=${BENCH_DRAIN_MS:-3000} settle_ms=300 hold_ms=0
else
  n_big=${BENCH_N_BIG:-19000} n_mid=${BENCH_N_MID:-10000} window=${BENCH_WINDOW_S:-30}
  singles=${BENCH_SINGLES:-10} single_gap=${BENCH_SINGLE_GAP_MS:-1000}
  fill_topics=${BENCH_FILL_TOPICS:-100000} drain_ms=${BENCH_DRAIN_MS:-10000} settle_ms=1000 hold_ms=2000
fi
fill_bytes=${BENCH_FILL_BYTES:-1024}
floor_threads=${BENCH_FLOOR_THREADS:-2}
max_streams=${BENCH_MAX_STREAMS:-19500}
scenarios=" ${BENCH_SCENARIOS:-a b c d e f} "
want() { [[ $scenarios == *" $1 "* ]]; }

# the source the binaries come from, taken before building
rev="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet HEAD -- apiserver common kv-updater 2>/dev/null || echo '+uncommitted')"
[[ -n ${BENCH_BIN_DIR:-} ]] && rev="binaries from $BENCH_BIN_DIR (tree at $rev)"

# ---- build -------------------------------------------------------------------
if [[ -n ${BENCH_BIN_DIR:-} ]]; then
  bin=$BENCH_BIN_DIR
else
  bdir=${BENCH_BUILD_DIR:-$root/build-bench-run}
  echo "building in $bdir ..." >&2
  cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTATECAST_TESTS=OFF >/dev/null
  cmake --build "$bdir" -j"$(nproc)" --target statecast-apiserver statecast-kv-updater statecast-loadgen \
    statecast-floor >/dev/null
  bin=$bdir/bin
fi
for b in statecast-apiserver statecast-kv-updater statecast-loadgen statecast-floor; do
  [[ -x $bin/$b ]] || { echo "bench/run.sh: $bin/$b missing" >&2; exit 1; }
done

nchan=${BENCH_NCHAN:-auto}
[[ $quick == 1 ]] && nchan=${BENCH_NCHAN:-0} # opt-in at tiny scale: keeps --quick short
nchan_mod=/usr/lib/nginx/modules/ngx_nchan_module.so
if [[ $nchan == auto ]]; then
  if command -v nginx >/dev/null && [[ -f $nchan_mod ]]; then nchan=1; else nchan=0; fi
fi
floor=${BENCH_FLOOR:-1}

# ---- processes, stopped by pid -------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/statecast-bench.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}"; done
  if [[ $rc != 0 ]]; then
    echo "bench/run.sh: failed (exit $rc); logs kept in $tmp" >&2
  elif [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
    echo "bench/run.sh: logs kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; forget "$pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
}
forget() {
  local keep=() p
  for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  pids=("${keep[@]+"${keep[@]}"}")
}

free_port() {
  local p
  for p in $(shuf -i 20000-32000 -n 200); do
    if ! (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  echo "bench/run.sh: no free port" >&2
  return 1
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true; }

wait_http_200() { # url timeout_s
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    [[ $(http_code "$1") == 200 ]] && return 0
    sleep 0.02
  done
  echo "bench/run.sh: $1 not ready after $2 s" >&2
  return 1
}

redis_port=$(free_port)
mkdir -p "$tmp/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$tmp/redis" --save '' --appendonly no \
  --logfile "$tmp/redis.log" &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 100); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
redis-cli -p "$redis_port" ping >/dev/null
redis_url=redis://127.0.0.1:$redis_port

health_port=$(free_port)
"$bin/statecast-kv-updater" --redis-url "$redis_url" --health-listen "127.0.0.1:$health_port" \
  --log-level warn 2>>"$tmp/kv-updater.log" &
kvu_pid=$!
pids+=("$kvu_pid")
wait_http_200 "http://127.0.0.1:$health_port/readyz" 30
# Warm-up: the first commit into an empty Redis creates statecast:epoch. An
# apiserver that started before it has been seen to miss that first commit
# on some or all streams (2 of 15 tries), so every measurement starts after
# the epoch exists: steady state, not the empty-Redis edge case.
redis-cli -p "$redis_port" XADD statecast:inbox '*' topic bench/warmup data '{"warmup":true}' >/dev/null
for _ in $(seq 200); do
  [[ -n $(redis-cli -p "$redis_port" GET statecast:epoch) ]] && break
  sleep 0.05
done
[[ -n $(redis-cli -p "$redis_port" GET statecast:epoch) ]] || { echo "bench/run.sh: kv-updater did not commit" >&2; exit 1; }

api_port=$(free_port)
api_pid=
start_api() {
  "$bin/statecast-apiserver" --redis-url "$redis_url" --listen "127.0.0.1:$api_port" --max-streams "$max_streams" \
    --drain-seconds 0 --log-level warn --web-root "$root/apiserver/web" 2>>"$tmp/apiserver.log" &
  api_pid=$!
  pids+=("$api_pid")
}
stop_api() {
  [[ -n $api_pid ]] && stop_pid "$api_pid"
  api_pid=
}
fresh_api() {
  stop_api
  start_api
  wait_http_200 "http://127.0.0.1:$api_port/readyz" 600
}

floor_port=$(free_port)
floor_pub_port=$(free_port)
floor_pid=
fresh_floor() {
  [[ -n $floor_pid ]] && stop_pid "$floor_pid"
  "$bin/statecast-floor" --listen "127.0.0.1:$floor_port" --pub-listen "127.0.0.1:$floor_pub_port" \
    -t "$floor_threads" 2>>"$tmp/floor.log" &
  floor_pid=$!
  pids+=("$floor_pid")
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$floor_pub_port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench/run.sh: statecast-floor did not start" >&2
  return 1
}
stop_floor() {
  [[ -n $floor_pid ]] && stop_pid "$floor_pid"
  floor_pid=
}

nchan_port=$(free_port)
nginx_pid=
nginx_pids=
fresh_nchan() {
  stop_nchan
  local d=$tmp/nginx
  mkdir -p "$d/tmp"
  local user_line=""
  [[ $(id -u) == 0 ]] && user_line="user root;"
  cat >"$d/nginx.conf" <<EOF
load_module $nchan_mod;
$user_line
worker_processes 2;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
worker_rlimit_nofile 19800;
events { worker_connections 19500; }
http {
  access_log off;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  nchan_shared_memory_size 256m;
  server {
    listen 127.0.0.1:$nchan_port backlog=4096;
    # Every topic goes to one channel that every stream subscribes to, so a
    # stream sees all topics, as statecast's ?topic=bench/x/* streams do.
    location /pub/ { nchan_publisher; nchan_channel_id bench; nchan_message_buffer_length 64; nchan_message_timeout 60s; }
    location /events { nchan_subscriber eventsource; nchan_channel_id bench; nchan_subscriber_first_message newest; }
  }
}
EOF
  nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" &
  nginx_pid=$!
  pids+=("$nginx_pid")
  local kids=""
  for _ in $(seq 100); do
    kids=$(cat "/proc/$nginx_pid/task/$nginx_pid/children" 2>/dev/null || true)
    [[ $(wc -w <<<"$kids") -ge 2 ]] && (exec 3<>/dev/tcp/127.0.0.1/"$nchan_port") 2>/dev/null && break
    sleep 0.05
  done
  nginx_pids=$nginx_pid$(for k in $kids; do printf ',%s' "$k"; done)
}
stop_nchan() {
  [[ -n $nginx_pid ]] && stop_pid "$nginx_pid"
  nginx_pid=
}

# ---- the load generator ----------------------------------------------------------
src_net=0
results=$tmp/results.kv
: >"$results"
loadgen() { # name target args...: runs one measurement, raw figures in $tmp/<name>.kv
  local name=$1 target=$2
  shift 2
  src_net=$((src_net + 1)) # fresh source addresses per run: no TIME_WAIT reuse
  local common=(--src "127.0.$src_net.2" --settle-ms "$settle_ms" --drain-ms "$drain_ms" --out "$tmp/$name.kv")
  case $target in
  statecast)
    common+=(--port "$api_port" --expect-sync --pub "$redis_url"
      --proc "api=$api_pid" --proc "kvu=$kvu_pid" --proc "redis=$redis_pid")
    ;;
  floor) common+=(--port "$floor_port" --pub "http://127.0.0.1:$floor_pub_port/pub/" --proc "floor=$floor_pid") ;;
  nchan) common+=(--port "$nchan_port" --pub "http://127.0.0.1:$nchan_port/pub/" --proc "nginx=$nginx_pids") ;;
  esac
  echo "== $name ($target): $*" >&2
  "$bin/statecast-loadgen" "${common[@]}" "$@" >/dev/null 2>>"$tmp/loadgen.log"
  sed "s/^/$name./" "$tmp/$name.kv" >>"$results"
  echo "   $(grep -E '^(connected|lost|dups|delay_p50_us|delay_p99_us|fanout_median_us)=' "$tmp/$name.kv" | tr '\n' ' ')" >&2
}

# topic set per scenario: streams subscribe to bench/<s>/*, so one scenario's
# topics are not another's initial state
topics_args() { targs=(--topic-prefix "bench/$1/t" --path "/events?topic=bench/$1/*"); }

t_begin=$SECONDS
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
fan_args=(--rate "$(awk -v g="$single_gap" 'BEGIN{printf "%g", 1000/g}')" --topics 1 --count "$singles" --size 200)

# a + b(19k): idle memory with N_BIG streams, then single messages to them
if want a || want b; then
  fresh_api
  topics_args fan
  loadgen a_idle_fan_big statecast -n "$n_big" --idle-rss --hold-ms "$hold_ms" "${fan_args[@]}" "${targs[@]}"
  stop_api
  if [[ $floor == 1 ]]; then
    fresh_floor
    topics_args fan
    loadgen floor_fan_big floor -n "$n_big" --idle-rss --hold-ms "$hold_ms" "${fan_args[@]}" "${targs[@]}"
    stop_floor
  fi
fi
if want b; then
  fresh_api
  topics_args fan
  loadgen b_fan_mid statecast -n "$n_mid" "${fan_args[@]}" "${targs[@]}"
  stop_api
  if [[ $floor == 1 ]]; then
    fresh_floor
    topics_args fan
    loadgen floor_fan_mid floor -n "$n_mid" "${fan_args[@]}" "${targs[@]}"
    stop_floor
  fi
fi

rate_run() { # name target streams rate topics scenario-tag
  topics_args "$6"
  loadgen "$1" "$2" -n "$3" --rate "$4" --topics "$5" --size 200 --duration "$window" "${targs[@]}"
}
if want c; then
  fresh_api
  rate_run c statecast "$n_mid" 10 10 c
  stop_api
  if [[ $floor == 1 ]]; then fresh_floor; rate_run floor_c floor "$n_mid" 10 10 c; stop_floor; fi
  if [[ $nchan == 1 ]]; then fresh_nchan; rate_run nchan_c nchan "$n_mid" 10 10 c; stop_nchan; fi
fi
if want d; then
  fresh_api
  rate_run d statecast "$n_big" 50 50 d
  stop_api
  if [[ $floor == 1 ]]; then fresh_floor; rate_run floor_d floor "$n_big" 50 50 d; stop_floor; fi
  if [[ $nchan == 1 ]]; then fresh_nchan; rate_run nchan_d nchan "$n_big" 50 50 d; stop_nchan; fi
fi
if want e; then
  fresh_api
  rate_run e statecast "$n_mid" 100 100 e
  stop_api
  if [[ $floor == 1 ]]; then fresh_floor; rate_run floor_e floor "$n_mid" 100 100 e; stop_floor; fi
  if [[ $nchan == 1 ]]; then fresh_nchan; rate_run nchan_e nchan "$n_mid" 100 100 e; stop_nchan; fi
fi
stop_floor

# f: start-up with many topics
if want f; then
  stop_api
  echo "== f: fill $fill_topics topics of $fill_bytes B, start a fresh apiserver" >&2
  "$bin/statecast-loadgen" --fill "$fill_topics" --fill-bytes "$fill_bytes" --pub "$redis_url" --out "$tmp/f.kv" \
    >/dev/null 2>>"$tmp/loadgen.log"
  t0=$(date +%s.%N)
  start_api
  wait_http_200 "http://127.0.0.1:$api_port/readyz" 600
  t1=$(date +%s.%N)
  {
    cat "$tmp/f.kv"
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "ready_seconds=%.2f\n", b-a}'
    echo "ready_rss_kb=$(awk '/^VmRSS:/{print $2}' "/proc/$api_pid/status")"
  } | sed 's/^/f./' >>"$results"
  echo "   $(grep '^f\.' "$results" | tr '\n' ' ')" >&2
  stop_api
fi
stop_api
elapsed=$((SECONDS - t_begin))

# ---- the table -----------------------------------------------------------------------
val() { sed -n "s/^$1=//p" "$results" | tail -1; }
has() { [[ -n $(val "$1") ]]; }
num() { awk -v x="$1" 'BEGIN{ s=sprintf("%.0f", x); r=""; while (length(s)>3) { r="," substr(s,length(s)-2) r; s=substr(s,1,length(s)-3) } print s r }'; }
ms() { # microseconds -> "12.3 ms"
  local x
  x=$(val "$1")
  [[ -z $x || $x == -1 ]] && { echo "—"; return; }
  awk -v x="$x" 'BEGIN{ if (x >= 100000) printf "%.0f ms", x/1000; else printf "%.1f ms", x/1000 }'
}
lat() { has "$1.delay_p50_us" && echo "$(ms "$1.delay_p50_us") / $(ms "$1.delay_p99_us") / $(ms "$1.delay_max_us")" || echo "—"; }
streams() { # connected/failed/dropped
  has "$1.connected" || { echo "—"; return; }
  echo "$(num "$(val "$1.connected")")/$(num "$(val "$1.streams")") up, $(val "$1.failed") failed, $(val "$1.disconnected") dropped"
}
loss() {
  has "$1.lost" || { echo "—"; return; }
  local e l
  e=$(val "$1.expected") l=$(val "$1.lost")
  echo "$(num "$l") of $(num "$e") ($(awk -v l="$l" -v e="$e" 'BEGIN{ printf "%.2f %%", e ? 100*l/e : 0 }')), dups $(val "$1.dups")"
}
cpu() {
  has "$1.cpu_loadgen_seconds" || { echo "—"; return; }
  local s="" k
  for k in api kvu redis floor nginx; do
    has "$1.cpu_${k}_seconds" && s+="$k $(val "$1.cpu_${k}_seconds") s, "
  done
  echo "${s}generator $(val "$1.cpu_loadgen_seconds") s over $(val "$1.measured_seconds") s"
}
ratio() {
  local a b
  a=$(val "$1.fanout_median_us") b=$(val "$2.fanout_median_us")
  [[ -z $a || -z $b || $a -le 0 || $b -le 0 ]] && { echo "—"; return; }
  awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", a/b}'
}
keeps_up() { # no loss, caught up, none dropped, and the publisher was not held back
  has "$1.lost" || { echo "—"; return; }
  local why=""
  [[ $(val "$1.lost") == 0 ]] || why+="lost, "
  [[ $(val "$1.caught_up") == 1 ]] || why+="not caught up, "
  [[ $(val "$1.disconnected") == 0 ]] || why+="streams dropped, "
  [[ $(val "$1.published") == "$(val "$1.publish_planned")" && $(val "$1.publish_late_max_us") -lt 1000000 ]] ||
    why+="publisher held back to $(val "$1.publish_rate_achieved")/s, "
  [[ -z $why ]] && echo yes || echo "no (${why%, })"
}
rss_per() {
  has "$1.rss_per_stream_bytes" || { echo "—"; return; }
  echo "$(num "$(val "$1.rss_per_stream_bytes")") B ($(val "$1.rss_per_stream_kib") KiB): $(num "$(val "$1.rss_zero_kb")") → $(num "$(val "$1.rss_idle_kb")") KiB"
}
pubrate() { # the publisher's achieved rate; a server that answers publishes late holds it back
  has "$1.publish_rate_achieved" || { echo "—"; return; }
  echo "$(val "$1.publish_rate_achieved")/s of $(val "$1.rate")/s, $(num "$(val "$1.published")")/$(num "$(val "$1.publish_planned")") sent, late ≤ $(ms "$1.publish_late_max_us")"
}
other() { # CPU of everything else on the machine during the window (should be ~0)
  has "$1.cpu_other_seconds" || { echo "—"; return; }
  echo "$(val "$1.cpu_other_seconds") s of $(val "$1.cpu_machine_seconds") s"
}
rss_window() {
  has "$1.rss_start_kb" || { echo "—"; return; }
  echo "$(num "$(val "$1.rss_start_kb")") → $(num "$(val "$1.rss_end_kb")") KiB"
}
stale() { has "$1.stale_p99_us" && echo "p99 $(ms "$1.stale_p99_us"), max $(ms "$1.stale_max_us") ($(val "$1.stale_open_at_end") open at end)" || echo "—"; }
nch() { [[ $nchan == 1 ]] && "$@" || echo "not run"; }
flr() { [[ $floor == 1 ]] && "$@" || echo "not run"; }

mode=full
[[ $quick == 1 ]] && mode=quick
table=$tmp/results.md
{
  echo "## statecast benchmark ($mode)"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $rev, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); run took ${elapsed} s."
  echo "Load average before the run: $load_before. Latencies are p50 / p99 / max of publish-to-receive; CPU seconds are over the measured window."
  echo
  echo "| scenario | figure | statecast | floor | Nchan |"
  echo "|---|---|---|---|---|"
  if want a; then
    echo "| a. $(num "$n_big") idle streams | streams | $(streams a_idle_fan_big) | $(flr streams floor_fan_big) | |"
    echo "| | server RSS per idle stream | $(rss_per a_idle_fan_big) | $(flr rss_per floor_fan_big) | |"
  fi
  if want b; then
    echo "| b. fan-out of one message | to $(num "$n_mid") streams (median of $singles per-message maxima) | $(ms b_fan_mid.fanout_median_us) | $(flr ms floor_fan_mid.fanout_median_us) | |"
    echo "| | ratio statecast / floor, $(num "$n_mid") | $(flr ratio b_fan_mid floor_fan_mid) | | |"
    echo "| | to $(num "$n_big") streams | $(ms a_idle_fan_big.fanout_median_us) | $(flr ms floor_fan_big.fanout_median_us) | |"
    echo "| | ratio statecast / floor, $(num "$n_big") | $(flr ratio a_idle_fan_big floor_fan_big) | | |"
    echo "| | streams, loss ($(num "$n_mid") / $(num "$n_big")) | $(streams b_fan_mid); $(loss b_fan_mid) / $(streams a_idle_fan_big); $(loss a_idle_fan_big) | $(flr loss floor_fan_mid) / $(flr loss floor_fan_big) | |"
  fi
  if want c; then
    echo "| c. $(num "$n_mid") streams × 10 msg/s, 200 B, 10 topics, ${window} s | delay p50 / p99 / max | $(lat c) | $(flr lat floor_c) | $(nch lat nchan_c) |"
    echo "| | lost, dups | $(loss c) | $(flr loss floor_c) | $(nch loss nchan_c) |"
    echo "| | streams | $(streams c) | $(flr streams floor_c) | $(nch streams nchan_c) |"
    echo "| | CPU | $(cpu c) | $(flr cpu floor_c) | $(nch cpu nchan_c) |"
    echo "| | publisher | $(pubrate c) | $(flr pubrate floor_c) | $(nch pubrate nchan_c) |"
    echo "| | machine CPU outside the measured processes (of all CPU used) | $(other c) | $(flr other floor_c) | $(nch other nchan_c) |"
  fi
  if want d; then
    echo "| d. $(num "$n_big") streams × 50 msg/s, 200 B, 50 topics, ${window} s | keeps up (no loss, caught up, none dropped) | $(keeps_up d) | $(flr keeps_up floor_d) | $(nch keeps_up nchan_d) |"
    echo "| | delay p50 / p99 / max | $(lat d) | $(flr lat floor_d) | $(nch lat nchan_d) |"
    echo "| | lost (coalesced), dups | $(loss d) | $(flr loss floor_d) | $(nch loss nchan_d) |"
    echo "| | streams | $(streams d) | $(flr streams floor_d) | $(nch streams nchan_d) |"
    echo "| | CPU | $(cpu d) | $(flr cpu floor_d) | $(nch cpu nchan_d) |"
    echo "| | publisher | $(pubrate d) | $(flr pubrate floor_d) | $(nch pubrate nchan_d) |"
    echo "| | machine CPU outside the measured processes (of all CPU used) | $(other d) | $(flr other floor_d) | $(nch other nchan_d) |"
  fi
  if want e; then
    echo "| e. $(num "$n_mid") streams × 100 msg/s over 100 topics, 200 B, ${window} s | staleness | $(stale e) | $(flr stale floor_e) | $(nch stale nchan_e) |"
    echo "| | delay p50 / p99 / max | $(lat e) | $(flr lat floor_e) | $(nch lat nchan_e) |"
    echo "| | lost (coalesced), dups | $(loss e) | $(flr loss floor_e) | $(nch loss nchan_e) |"
    echo "| | server RSS at start → end of window | $(rss_window e) | $(flr rss_window floor_e) | $(nch rss_window nchan_e) |"
    echo "| | streams | $(streams e) | $(flr streams floor_e) | $(nch streams nchan_e) |"
    echo "| | CPU | $(cpu e) | $(flr cpu floor_e) | $(nch cpu nchan_e) |"
    echo "| | publisher | $(pubrate e) | $(flr pubrate floor_e) | $(nch pubrate nchan_e) |"
    echo "| | machine CPU outside the measured processes (of all CPU used) | $(other e) | $(flr other floor_e) | $(nch other nchan_e) |"
  fi
  if want f; then
    echo "| f. start-up with $(num "$fill_topics") topics × $(num "$fill_bytes") B | fresh apiserver until /readyz is 200 | $(val f.ready_seconds) s (RSS $(num "$(val f.ready_rss_kb)") KiB; fill took $(val f.fill_seconds) s) | | |"
  fi
} >"$table"

out_dir=${BENCH_OUT_DIR:-}
if [[ -z $out_dir ]]; then
  if [[ $quick == 1 ]]; then out_dir=$(mktemp -d "${TMPDIR:-/tmp}/statecast-bench-results.XXXXXX"); else out_dir=$root/bench/results; fi
fi
mkdir -p "$out_dir"
cp "$table" "$out_dir/results-$mode.md"
cp "$results" "$out_dir/results-$mode.kv"
cat "$table"
echo
echo "written: $out_dir/results-$mode.md and $out_dir/results-$mode.kv" >&2
