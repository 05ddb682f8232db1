#!/usr/bin/env bash
# Builds plexus and runs the demo app under the supervisor: `plexus run` with no config
# starts a router, calc (two replicas), a ticker and a flaky worker that crashes now
# and then. It prints what to try next; Ctrl-C stops everything.
# Usage: scripts/demo.sh [plexus run options, e.g. a config file]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"${PLEXUS_JOBS:-2}" --target plexus_cli calc ticker flaky
exec build/bin/plexus run "$@"
