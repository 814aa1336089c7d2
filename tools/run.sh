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
# the simulator runs as a DAQ (wattpipe-daq, ZeroMQ PUB) and two daemons
# measure its two points, the car side as MODULE and the grid side as
# MODULE_grid, each with its own page and watcher.
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
    --mqtt-prefix) prefix="${args[i + 1]:-}" ;;
    --mqtt-prefix=*) prefix="${args[i]#--mqtt-prefix=}" ;;
    --analysis | --analysis=*) analysis_set=1 ;;
    --http | --http=*) http_set=1 ;;
    --sim-profile) profile="${args[i + 1]:-}" ;;
    --sim-profile=*) profile="${args[i]#--sim-profile=}" ;;
    --state-dir) state_set=1 state="${args[i + 1]:-}" ;;
    --state-dir=*) state_set=1 state="${args[i]#--state-dir=}" ;;
    --sim-session-s) session="${args[i + 1]:-}" ;;
    --sim-session-s=*) session="${args[i]#--sim-session-s=}" ;;
  esac
done

# The broker, the watcher and the daemon run in sessions of their own, so
# Ctrl-C reaches only this script, which stops them in order: the daemon
# first (its last values and its goodbye reach the watcher through the
# broker), then the watcher, then the broker; then its temporary files go.
daemon="" watcher="" mosq="" conf="" daq="" daemon2="" watcher2=""
stop_pid() {
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  trap - EXIT INT TERM
  stop_pid "$daemon"
  stop_pid "$daemon2"
  stop_pid "$daq"
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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
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

if [ "${profile:-}" = charger ]; then
  # One DAQ stream, two measuring points: the car side (the billing meter) and the grid side.
  daqport=$(free_port)
  daq_args=(--bind "tcp://127.0.0.1:$daqport" --sim-profile charger --quiet)
  [ -n "${session:-}" ] && daq_args+=(--sim-session-s "$session")
  setsid build/bin/wattpipe-daq "${daq_args[@]}" &
  daq=$!
  watch "${module}_grid"
  watcher2=$!
  point() {  # point NAME MODULE: a daemon measuring that point of the stream
    local a=("${extra[@]}" --source "zmq:tcp://127.0.0.1:$daqport")
    [ -z "${http_set:-}" ] && { local p; p=$(free_port); a+=(--http "127.0.0.1:$p"); echo "live page of $2: http://127.0.0.1:$p/" >&2; }
    # A state directory per point (each has its own registers): the one given, or the demo's, with the point's name.
    local sd="${state:-wattpipe-state/charger}-$1"
    [ "${state:-}" = none ] && sd=none
    setsid build/bin/wattpipe "${a[@]}" "${args[@]}" --state-dir "$sd" --point "$1" --module-id "$2" &
  }
  point car "$module"
  daemon=$!
  point grid "${module}_grid"
  daemon2=$!
  echo "charger: a DAQ stream on tcp://127.0.0.1:$daqport, measured as $module (car side) and ${module}_grid (grid side)" >&2
  rc=0
  wait "$daemon" || rc=$?
  daemon=""
  exit "$rc"
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
