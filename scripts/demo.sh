#!/usr/bin/env bash
# Builds plexus, starts a router and the calc example, shows a few calls, then stops
# both. (Once the supervisor lands, this becomes `plexus run`.)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"${PLEXUS_JOBS:-2}" --target plexus_cli calc

bin=build/bin
dir=$(mktemp -d /tmp/plexus-demo-XXXXXX)
export PLEXUS_ROUTER="ipc://$dir/router.sock"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

"$bin/plexus" router 2>"$dir/router.log" &
pids+=($!)
wait_for() {  # file text: bounded wait for a readiness line
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "not ready: $1"; cat "$dir"/*.log; exit 1
}
wait_for "$dir/router.log" "listening"
"$bin/calc" >"$dir/calc.log" 2>&1 &
pids+=($!)
wait_for "$dir/calc.log" "calc ready"

show() {
  echo "\$ plexus $*"
  "$bin/plexus" "$@" || echo "(exit code $?)"
  echo
}
echo "router at $PLEXUS_ROUTER"
echo
show services
show call calc add 1 2
show call calc add 1.5 2
show call calc echo '{"hello": ["wörld", 42, null]}'
show call calc div 1 0
show call calc sleep 0.2
show call nosuch x
show describe calc
if [[ -t 0 ]]; then
  echo "The router and calc keep running; in another terminal try:"
  echo "  PLEXUS_ROUTER=$PLEXUS_ROUTER $bin/plexus call calc add 40 2"
  echo "Ctrl-C stops both."
  wait "${pids[0]}" || true
fi
