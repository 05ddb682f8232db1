#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang-14, ASan + UBSan, in build-fuzz/) and runs
# each one on a copy of its seed corpus (fuzz/corpus/<target>/).
#
# Usage: scripts/fuzz.sh [--time SECONDS | --runs N] [--jobs N] [target...]
#   --time SECONDS  run each target this long (default 10)
#   --runs N        run each target for N executions instead
#   target          cbor, message, router, app_config, frames, http_routes (default: all of fuzz/)
# A crash leaves its input in build-fuzz/findings/<target>/ and makes the script fail.
# New inputs the fuzzer finds go to build-fuzz/corpus/<target>/ (kept between runs);
# the seeds in the repository are not modified.
set -euo pipefail
cd "$(dirname "$0")/.."

limit=(-max_total_time=10)
targets=()
while (($#)); do
  case $1 in
    --time) limit=(-max_total_time="$2"); shift 2 ;;
    --runs) limit=(-runs="$2"); shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if ((${#targets[@]} == 0)); then
  for f in fuzz/*_fuzz.cpp; do targets+=("$(basename "$f" _fuzz.cpp)"); done
fi

bash scripts/bootstrap.sh
jobs=${PLEXUS_JOBS:-2}
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 -DPLEXUS_FUZZ=ON -DPLEXUS_BUILD_TESTS=OFF \
  -DPLEXUS_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target plexus_fuzzers

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}
status=0
for t in "${targets[@]}"; do
  program=build-fuzz/fuzz/${t}_fuzz
  [[ -x $program ]] || { echo "fuzz.sh: no fuzz target '$t' (fuzz/${t}_fuzz.cpp)" >&2; exit 2; }
  corpus=build-fuzz/corpus/$t
  findings=build-fuzz/findings/$t
  mkdir -p "$corpus" "$findings"
  dict=()
  [[ -f fuzz/$t.dict ]] && dict=(-dict="fuzz/$t.dict")
  echo "== fuzz $t (${limit[*]})"
  # -close_fd_mask=3: the targets print nothing worth keeping; libFuzzer's own summary
  # goes to stderr, which is kept.
  if "$program" "${limit[@]}" "${dict[@]}" -artifact_prefix="$findings/" -print_final_stats=1 \
      -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -close_fd_mask=1 \
      "$corpus" "fuzz/corpus/$t" 2>"build-fuzz/$t.log"; then
    grep -E "^stat::number_of_executed_units|^Done|INFO: -(max_total_time|runs)" "build-fuzz/$t.log" || true
  else
    status=1
    echo "fuzz.sh: $t FAILED; the input is in $findings/, the log in build-fuzz/$t.log:" >&2
    tail -40 "build-fuzz/$t.log" >&2
  fi
done
exit $status
