# SPDX-License-Identifier: Apache-2.0
# Debian packages wattpipe needs, and a function that installs the missing
# ones. Sourced by tools/test.sh and tools/run.sh.
WATTPIPE_PACKAGES=(
  # build
  cmake ninja-build g++ pkg-config
  # libraries (see README: what each is for)
  libzmq3-dev cppzmq-dev libconcurrentqueue-dev libsimdjson-dev libmosquitto-dev libssl-dev zlib1g-dev
  libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev libcivetweb-dev libsystemd-dev libhdf5-dev libpq-dev
  # tests and benchmarks, and the peers benchmarks compare against
  libgtest-dev libgmock-dev libbenchmark-dev libreaderwriterqueue-dev libboost-dev nlohmann-json3-dev
  # the broker, TLS tooling, and the Python peers of the integration tests and the plot tool
  mosquitto mosquitto-clients openssl
  # the database store's tests and benchmark: a PostgreSQL server started per test (initdb), psql
  postgresql postgresql-client
  python3 python3-paho-mqtt python3-jsonschema python3-yaml python3-zmq python3-numpy python3-matplotlib python3-h5py python3-pandas
  # the package test (cpack's dpkg-shlibdeps, systemd-analyze; the service booted in systemd-nspawn)
  dpkg-dev systemd systemd-container
  # the browser test of the live page
  chromium chromium-driver python3-selenium
  # the full-disk tests: an ext4 image for a state directory that fails (mkfs.ext4)
  e2fsprogs
)

ensure_packages() {
  local missing=() p
  for p in "${WATTPIPE_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
