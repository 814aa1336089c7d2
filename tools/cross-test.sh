#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tools/cross-test.sh aarch64: cross-compiles wattpipe for 64-bit ARM (the
# boards that run EVerest) with Debian's cross toolchain and runs the unit
# tests under qemu-user. The native build is left alone: the target's
# libraries are never installed (some arm64 -dev packages are not
# co-installable with the amd64 ones and would replace them); they are
# downloaded (`apt-get download`) and unpacked (`dpkg -x`) into a sysroot of
# their own under build-aarch64/. The binaries name the cross toolchain's own
# loader and libc (-Wl,--dynamic-linker, rpath), so qemu runs them without
# -L (mixing the cross loader with a multiarch libc hangs thread creation).
set -euo pipefail
arch="${1:-}"
if [ "$arch" != aarch64 ]; then
  echo "usage: tools/cross-test.sh aarch64" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
root=$(pwd)
. tools/deps.sh
ensure_packages g++-aarch64-linux-gnu qemu-user dpkg-dev

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
# arm64 package lists: adding the architecture installs nothing.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64
  $sudo apt-get update -qq
fi

out="$root/build-aarch64"
sysroot="$out/sysroot"
debs="$out/debs"
mkdir -p "$debs" "$sysroot"
# The libraries wattpipe links and the -dev packages with their headers and
# CMake/pkg-config files; their dependencies follow. The C/C++ runtime comes
# from the cross toolchain, so it is left out.
wanted=(libzmq3-dev libssl-dev libmosquitto-dev libsimdjson-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
        zlib1g-dev libcivetweb-dev libsystemd-dev libhdf5-dev libgtest-dev libgmock-dev)
# Header-only, architecture-independent: taken as they are.
indep=(cppzmq-dev libconcurrentqueue-dev libcli11-dev)
skip='^(libc6|libc6-dev|libgcc-s1|libstdc\+\+6|libstdc\+\+-12-dev|libgcc-12-dev|gcc-12-base|linux-libc-dev|libcrypt1|libcrypt-dev|libnsl2|libnsl-dev|libtirpc3|libtirpc-dev|libtirpc-common|rpcsvc-proto|debconf|dpkg|perl-base|tar|install-info|libselinux1|libpcre2-8-0|sensible-utils)$'
# The sysroot is made again when the list of packages changes.
stamp="${wanted[*]} ${indep[*]}"
if [ ! -f "$out/.sysroot-done" ] || [ "$(cat "$out/.sysroot-done")" != "$stamp" ]; then
  rm -rf "$debs" "$sysroot"
  mkdir -p "$debs" "$sysroot"
  mapfile -t pkgs < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
                        --no-replaces --no-enhances --no-pre-depends "${wanted[@]/%/:arm64}" 2>/dev/null |
                      grep -v '^ ' | sed 's/:arm64$//' | grep -v '^<' | sort -u | grep -Ev "$skip")
  echo "sysroot: ${#pkgs[@]} packages" >&2
  # One at a time: apt-get download gives up on the whole list for one name it lacks.
  for p in "${pkgs[@]}" "${indep[@]}"; do
    # Architecture: all packages (headers) have no :arm64 name; any other one would be the host's.
    (cd "$debs" && apt-get download -qq "$p:arm64" 2>/dev/null) ||
      (cd "$debs" && apt-get download -qq "$p" 2>/dev/null && rm -f "$debs/${p}"_*_amd64.deb) ||
      echo "sysroot: no $p for arm64" >&2
  done
  if ls "$debs"/*_amd64.deb >/dev/null 2>&1; then
    echo "sysroot: a host package slipped in" >&2
    exit 1
  fi
  for d in "$debs"/*.deb; do dpkg -x "$d" "$sysroot"; done
  # Absolute symlinks point into the host: make them point into the sysroot.
  find "$sysroot" -type l | while read -r l; do
    t=$(readlink "$l")
    case "$t" in /*) ln -sfn "$sysroot$t" "$l" ;; esac
  done
  echo "$stamp" >"$out/.sysroot-done"
fi

cross=/usr/aarch64-linux-gnu
libs="$sysroot/usr/lib/aarch64-linux-gnu:$sysroot/lib/aarch64-linux-gnu"
cat >"$out/toolchain.cmake" <<EOF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH "$sysroot" "$cross")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_CXX_FLAGS_INIT "-isystem $sysroot/usr/include -isystem $sysroot/usr/include/aarch64-linux-gnu")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
set(ENV{PKG_CONFIG_LIBDIR} "$sysroot/usr/lib/aarch64-linux-gnu/pkgconfig:$sysroot/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "$sysroot")
EOF

# The cross loader, and an RPATH (not RUNPATH: --disable-new-dtags) so that
# the libraries' own dependencies (libzmq's libbsd, ...) are found too.
ldflags="-Wl,--dynamic-linker=$cross/lib/ld-linux-aarch64.so.1 -Wl,--disable-new-dtags -Wl,-rpath,$cross/lib:$libs"
ldflags+=" -Wl,-rpath-link,$libs -L$sysroot/usr/lib/aarch64-linux-gnu -L$sysroot/lib/aarch64-linux-gnu"
cmake -S . -B "$out/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE="$out/toolchain.cmake" \
  -DCMAKE_EXE_LINKER_FLAGS="$ldflags" -DCMAKE_SHARED_LINKER_FLAGS="-Wl,-rpath-link,$libs" \
  -DWATTPIPE_BUILD_BENCH=OFF >"$out/configure.log" || { cat "$out/configure.log"; exit 1; }
cmake --build "$out/build" -j"${WATTPIPE_JOBS:-2}"
file "$out/build/bin/wattpipe"
# The unit tests (the integration tests need a broker and Python peers: native only).
ctest --test-dir "$out/build" -L unit --output-on-failure --timeout 1200
