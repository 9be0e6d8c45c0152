#!/usr/bin/env bash
# Installs what statecast needs, builds it, and runs the whole system locally:
# its own redis-server on a loopback port (data under .statecast/), the
# kv-updater, the apiserver (when built) and a demo publisher that keeps a few
# sample topics changing. Ctrl-C stops everything it started, by pid.
#
# Environment knobs (all optional):
#   STATECAST_DEMO_DIR        state folder            (default: ./.statecast)
#   STATECAST_DEMO_REDIS_PORT redis-server port       (default: 6390)
#   STATECAST_DEMO_HTTP_PORT  apiserver port          (default: 8080)
#   STATECAST_DEMO_HEALTH_PORT kv-updater health port (default: 8081)
#   STATECAST_SKIP_INSTALL=1  do not run apt-get
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

[[ "${STATECAST_SKIP_INSTALL:-0}" == 1 ]] || scripts/install-deps.sh
cmake -S . -B build -DSTATECAST_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
bin=$root/build/bin

dir=${STATECAST_DEMO_DIR:-$root/.statecast}
redis_port=${STATECAST_DEMO_REDIS_PORT:-6390}
http_port=${STATECAST_DEMO_HTTP_PORT:-8080}
health_port=${STATECAST_DEMO_HEALTH_PORT:-8081}
mkdir -p "$dir/redis" "$dir/log"

pids=()
stop_all() {
  trap - INT TERM EXIT
  echo
  echo "stopping: ${pids[*]}"
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped; state kept in $dir/redis"
}
trap stop_all INT TERM EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" \
  --appendonly yes --appendfsync everysec --save 60 1000 \
  --logfile "$dir/log/redis.log" &
pids+=($!)
for _ in $(seq 50); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$redis_port" ping >/dev/null || { echo "redis-server did not start; see $dir/log/redis.log" >&2; exit 1; }

export STATECAST_REDIS_URL="redis://127.0.0.1:$redis_port"
"$bin/statecast-kv-updater" --health-listen "127.0.0.1:$health_port" 2>>"$dir/log/kv-updater.log" &
pids+=($!)

if [[ -x "$bin/statecast-apiserver" ]]; then
  "$bin/statecast-apiserver" --listen "127.0.0.1:$http_port" --web-root "$root/apiserver/web" \
    2>>"$dir/log/apiserver.log" &
  pids+=($!)
fi

# Demo publishers: any script becomes a publishing microservice with --every/--exec.
pub="$bin/statecast-publisher"
"$pub" --every 1 --exec 'date -u +"{\"time\":\"%H:%M:%S\",\"date\":\"%Y-%m-%d\"}"' demo/clock \
  2>>"$dir/log/demo.log" &
pids+=($!)
"$pub" --every 2 --exec 'awk "BEGIN{srand(); printf \"{\\\"celsius\\\":%.1f,\\\"humidity\\\":%d}\n\", 18+rand()*6, 40+rand()*20}"' \
  demo/sensors/living-room 2>>"$dir/log/demo.log" &
pids+=($!)
"$pub" --every 3 --exec 'awk "BEGIN{srand(); printf \"{\\\"celsius\\\":%.1f,\\\"wind\\\":{\\\"speed\\\":%.1f,\\\"dir\\\":\\\"NW\\\"}}\n\", 5+rand()*10, rand()*20}"' \
  demo/sensors/outside 2>>"$dir/log/demo.log" &
pids+=($!)
"$pub" --every 5 --exec 'cut -d" " -f1-3 /proc/loadavg | awk "{printf \"{\\\"load1\\\":%s,\\\"load5\\\":%s,\\\"load15\\\":%s}\n\", \$1, \$2, \$3}"' \
  demo/host/load 2>>"$dir/log/demo.log" &
pids+=($!)

cat <<MSG

statecast is running (logs in $dir/log):
  redis-server   127.0.0.1:$redis_port   (data in $dir/redis)
  kv-updater     http://127.0.0.1:$health_port/metrics
MSG
if [[ -x "$bin/statecast-apiserver" ]]; then
  cat <<MSG
  web display    http://127.0.0.1:$http_port/
  SSE stream     curl -N http://127.0.0.1:$http_port/events
  state          curl http://127.0.0.1:$http_port/state
  LED matrix     $bin/statecast-matrix --url http://127.0.0.1:$http_port --layout matrix-client/examples/demo-layout.yaml
MSG
fi
cat <<MSG
  publish        $pub --redis-url $STATECAST_REDIS_URL my/topic '{"hello":"world"}'
                 redis-cli -p $redis_port PUBLISH 'update:{my/topic}' '{"hello":"world"}'
  read back      redis-cli -p $redis_port HGETALL 'state:{demo/clock}'

Ctrl-C stops everything.
MSG
wait
