#!/usr/bin/env bash
# Installs the Debian packages plexus needs to build, test and benchmark.
# Idempotent and quiet: does nothing when everything is already installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libboost1.81-dev            # Asio (header-only), Beast
  nlohmann-json3-dev          # JSON + CBOR
  libcli11-dev                # command line
  libtomlplusplus-dev         # app.toml
  libspdlog-dev libfmt-dev    # logging
  libgtest-dev libgmock-dev googletest
  libbenchmark-dev
  libzmq3-dev cppzmq-dev      # ZeroMQ transport and the zmq baseline
  libsodium-dev               # tcp authentication (HMAC, CURVE keys)
  python3 python3-zmq python3-cbor2 python3-pytest
  clang-14 libclang-rt-14-dev llvm-14  # libFuzzer targets (scripts/fuzz.sh)
  wrk nginx-light python3-aiohttp      # plexus-bench gateway and its baselines
)

missing=()
for p in "${packages[@]}"; do
  [[ $p == \#* ]] && continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "bootstrap: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
