#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tools/run.sh [daemon flags...]: installs the missing Debian packages, builds
# (Release) into build/, starts a private mosquitto on a free 127.0.0.1 port
# unless --broker is among the flags, runs build/bin/wattpipe on the simulator
# with the given flags, serves the live page on a free 127.0.0.1 port (its
# URL printed; --http chooses another), and prints one line per
# powermeter_values message as an EVerest peer sees it. Ctrl-C stops
# everything it started.
# --sim-profile charger (a charger's grid input and DC output on one clock):
# the daemon measures both points, the car side as MODULE and the grid side
# as MODULE_grid (--grid-module-id), and a watcher prints each module's values.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
ensure_packages
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
# Every tool the README uses.
cmake --build build -j2 --target wattpipe wattpipe-everest wattpipe-ocmf wattpipe-daq wattpipe-export wattpipe-bench

broker="" module="wattpipe" prefix=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --broker) broker="${args[i + 1]:-}" ;;
    --broker=*) broker="${args[i]#--broker=}" ;;
    --module-id) module="${args[i + 1]:-}" ;;
    --module-id=*) module="${args[i]#--module-id=}" ;;
    --grid-module-id) grid_module="${args[i + 1]:-}" ;;
    --grid-module-id=*) grid_module="${args[i]#--grid-module-id=}" ;;
    --point | --point=* | --points | --points=*) points_set=1 ;;
    --mqtt-prefix) prefix="${args[i + 1]:-}" ;;
    --mqtt-prefix=*) prefix="${args[i]#--mqtt-prefix=}" ;;
    --analysis | --analysis=*) analysis_set=1 ;;
    --http | --http=*) http_set=1 ;;
    --sim-profile) profile="${args[i + 1]:-}" ;;
    --sim-profile=*) profile="${args[i]#--sim-profile=}" ;;
    --state-dir) state_set=1 state="${args[i + 1]:-}" ;;
    --state-dir=*) state_set=1 state="${args[i]#--state-dir=}" ;;
  esac
done

# The broker, the watcher and the daemon run in sessions of their own, so
# Ctrl-C reaches only this script, which stops them in order: the daemon
# first (its last values reach the watcher through the broker), then the
# watcher, then the broker; then its temporary files go.
daemon="" watcher="" mosq="" conf="" watcher2=""
stop_pid() {
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  trap - EXIT INT TERM
  stop_pid "$daemon"
  [ -n "$watcher" ] && sleep 0.3
  stop_pid "$watcher"
  stop_pid "$watcher2"
  stop_pid "$mosq"
  [ -n "$conf" ] && rm -f "$conf"
  return 0
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

extra=()
if [ -z "$broker" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  broker="127.0.0.1:$port"
  conf=$(mktemp --suffix=.conf)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$conf"
  setsid mosquitto -c "$conf" >/dev/null 2>&1 &
  mosq=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  echo "private mosquitto on $broker" >&2
  extra=(--broker "$broker")
fi

watch() {  # watch MODULE: an EVerest peer printing that module's values
  local a=(watch --broker "$broker" --module-id "$1")
  [ -n "$prefix" ] && a+=(--mqtt-prefix "$prefix")
  setsid build/bin/wattpipe-everest "${a[@]}" &
}
watch "$module"
watcher=$!
sleep 0.2
# The demo shows the analysis (ripple, harmonics, steps) unless told otherwise.
[ -z "${analysis_set:-}" ] && extra+=(--analysis on)

# The charger's two points: the grid side is a module of its own, watched too.
if [ "${profile:-}" = charger ] && [ -z "${points_set:-}" ]; then
  watch "${grid_module:-${module}_grid}"
  watcher2=$!
  echo "charger: the DC output as module $module (it bills), the grid input as module ${grid_module:-${module}_grid}" >&2
fi
# The live page on a free loopback port.
if [ -z "${http_set:-}" ]; then
  webport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  extra+=(--http "127.0.0.1:$webport")
  echo "live page: http://127.0.0.1:$webport/" >&2
fi
# A state directory per profile: a demo of one profile does not carry the
# energy of another over.
if [ -z "${state_set:-}" ]; then
  extra+=(--state-dir "wattpipe-state/${profile:-ac3}")
  echo "state: wattpipe-state/${profile:-ac3} (the registers continue from earlier runs of this profile; --state-dir none starts from zero)" >&2
fi
setsid build/bin/wattpipe "${extra[@]}" --source sim "$@" &
daemon=$!
rc=0
wait "$daemon" || rc=$?
daemon=""  # ended by itself (--duration): cleanup stops the rest
exit "$rc"
