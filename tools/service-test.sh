#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tools/service-test.sh [DEB]: installs the Debian package on a booted
# systemd and checks the service for real (docs/deploy.md):
#   - dpkg -i installs it, systemctl enable --now starts it, READY arrives
#     (Type=notify: "active (running)"), and it stays up past WatchdogSec
#     with no restart (the watchdog is fed);
#   - its state is in /var/lib/wattpipe, owned by its dynamic user;
#   - systemctl reload (SIGHUP) keeps it running;
#   - with its processing thread stalled (a test hook, through a drop-in),
#     systemd's watchdog kills it and Restart=on-failure starts it again;
#   - systemctl stop ends it cleanly; dpkg -r removes it.
# The "machine" is this one, copy-on-write: an overlayfs over / booted with
# systemd-nspawn, so nothing is installed on the host. Needs root and
# systemd-container; builds the .deb in build/ when DEB is not given.
# Exit codes: 0 passed, 1 the service failed a check, 2 bad usage, 77 this
# machine cannot run the check (no mount or no booting container: not root,
# or a sandbox without overlayfs or systemd-nspawn).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "service-test: needs root (mounts and systemd-nspawn)" >&2; exit 77; }
. tools/deps.sh
ensure_packages
deb="${1:-}"
if [ -z "$deb" ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j2
  (cd build && cpack -G DEB >/dev/null)
  deb="$(ls -t build/wattpipe_*.deb | head -1)"
fi
deb="$(readlink -f "$deb")"

top="$(mktemp -d /tmp/wattpipe-service-XXXXXX)"
tree="$top/tree"  # the container's /
# Inside the container, the test works in a directory of its own.
work=/wattpipe-service-test
cleanup() {
  umount "$tree" 2>/dev/null || true
  umount "$top" 2>/dev/null || true
  rm -rf "$top"
}
trap cleanup EXIT
# The overlay's upper layer on a tmpfs of its own: the host's / stays as it is.
mount -t tmpfs -o size=2G tmpfs "$top" || { echo "service-test: cannot mount a tmpfs here" >&2; exit 77; }
mkdir -p "$top/up" "$top/work" "$tree"
mount -t overlay overlay -o "lowerdir=/,upperdir=$top/up,workdir=$top/work" "$tree" ||
  { echo "service-test: cannot mount an overlay of / here" >&2; exit 77; }
mkdir -p "$tree$work"
cp "$deb" "$tree$work/wattpipe.deb"
# The container must not inherit the host's services: only what the check needs.
rm -f "$tree"/etc/systemd/system/multi-user.target.wants/*

cat > "$tree$work/check.sh" <<'EOF'
#!/bin/bash
# Runs inside the booted container; writes its findings to result beside it.
cd "$(dirname "$0")"
exec > result 2>&1
set -x
fail() { echo "FAIL: $*"; systemctl --no-pager status wattpipe; journalctl --no-pager -u wattpipe | tail -40; systemctl poweroff; exit 1; }
dpkg -i ./wattpipe.deb || fail "dpkg -i"
# The shipped config runs the simulator; the broker may be absent (it retries).
systemctl enable --now wattpipe || fail "enable --now"
[ "$(systemctl show -p ActiveState --value wattpipe)" = active ] || fail "not active after start (READY)"
sleep 25  # 2.5 x WatchdogSec
[ "$(systemctl show -p ActiveState --value wattpipe)" = active ] || fail "not active after 25 s"
[ "$(systemctl show -p NRestarts --value wattpipe)" = 0 ] || fail "restarted: the watchdog was not fed"
echo "FACT: active 25 s after start with WatchdogSec=$(systemctl show -p WatchdogUSec --value wattpipe), restarts $(systemctl show -p NRestarts --value wattpipe), status '$(systemctl show -p StatusText --value wattpipe)'"
ls -la /var/lib/private/wattpipe /var/lib/wattpipe || fail "no state directory"
ls /var/lib/wattpipe/ | grep -q . || fail "empty state directory"
echo "FACT: /var/lib/wattpipe holds: $(ls /var/lib/wattpipe | tr '\n' ' ')"
systemctl reload wattpipe || fail "reload"
sleep 2
[ "$(systemctl show -p ActiveState --value wattpipe)" = active ] || fail "not active after reload"
pid_before="$(systemctl show -p MainPID --value wattpipe)"
# A stalled processing thread: the watchdog must kill it and systemd restart it.
mkdir -p /etc/systemd/system/wattpipe.service.d
printf '[Service]\nEnvironment=WATTPIPE_TEST_STALL_AFTER_FRAMES=100000\n' > /etc/systemd/system/wattpipe.service.d/stall.conf
systemctl daemon-reload
systemctl restart wattpipe
sleep 30  # the stall after 5 s of samples, 10 s of watchdog, 2 s to restart
journalctl --no-pager -u wattpipe | grep -i "watchdog timeout" || fail "no watchdog timeout with the processing thread stalled"
[ "$(systemctl show -p NRestarts --value wattpipe)" -ge 1 ] || fail "not restarted after the watchdog timeout"
echo "FACT: stalled: $(journalctl --no-pager -u wattpipe | grep -ci 'watchdog timeout') watchdog timeouts, restarts $(systemctl show -p NRestarts --value wattpipe)"
rm -r /etc/systemd/system/wattpipe.service.d
systemctl daemon-reload
systemctl stop wattpipe
[ "$(systemctl show -p ActiveState --value wattpipe)" = inactive ] || fail "not inactive after stop"
journalctl --no-pager -u wattpipe | grep -E "Stopped|Deactivated" | tail -2
dpkg -r wattpipe || fail "dpkg -r"
[ ! -e /usr/bin/wattpipe ] || fail "dpkg -r left /usr/bin/wattpipe"
echo "SERVICE-TEST PASSED"
systemctl poweroff
EOF
chmod +x "$tree$work/check.sh"
cat > "$tree/etc/systemd/system/wattpipe-check.service" <<EOF
[Unit]
Description=wattpipe service test
After=multi-user.target
[Service]
Type=oneshot
ExecStart=$work/check.sh
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/wattpipe-check.service "$tree/etc/systemd/system/multi-user.target.wants/wattpipe-check.service"

echo "service-test: booting a copy-on-write view of this machine with systemd-nspawn" >&2
timeout 240 systemd-nspawn -q -D "$tree" --register=no --keep-unit -M wattpipe-service-test -b \
  >"$top/console.log" 2>&1 || true
if grep -q "SERVICE-TEST PASSED" "$tree$work/result" 2>/dev/null; then
  grep -E "^FACT|Watchdog timeout|PASSED" "$tree$work/result" | sed 's/^/  /' >&2 || true
  echo "service-test: passed" >&2
  exit 0
fi
if [ ! -s "$tree$work/result" ]; then
  echo "service-test: the container did not boot here; its console:" >&2
  tail -20 "$top/console.log" >&2
  exit 77
fi
echo "service-test: FAILED" >&2
cat "$tree$work/result" >&2
exit 1
