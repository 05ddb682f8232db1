#!/usr/bin/env bash
# Builds plexus and runs every test: the normal build in build/; the same suite built
# with AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/; the unit tests that
# run threads built with ThreadSanitizer in build-tsan/; and a short run of every fuzz
# target (scripts/fuzz.sh, clang + libFuzzer) in build-fuzz/.
# Usage: scripts/test.sh [--no-sanitizers]   (then only the normal build and its tests)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh

jobs=${PLEXUS_JOBS:-2}
sanitizers=1
[[ ${1:-} == --no-sanitizers ]] && sanitizers=0

echo "== build (build/)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
echo "== tests (build/)"
ctest --test-dir build --output-on-failure -j1

if ((sanitizers)); then
  echo "== build with ASan + UBSan (build-asan/)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPLEXUS_SANITIZE=ON \
    -DPLEXUS_BUILD_BENCH=OFF >/dev/null
  cmake --build build-asan -j"$jobs"
  echo "== tests with ASan + UBSan (build-asan/)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j1

  echo "== build with ThreadSanitizer (build-tsan/, the threaded unit tests)"
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPLEXUS_TSAN=ON \
    -DPLEXUS_BUILD_BENCH=OFF >/dev/null
  cmake --build build-tsan -j"$jobs" --target plexus_thread_tests
  echo "== tests with ThreadSanitizer (build-tsan/)"
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 build-tsan/plexus_thread_tests \
    --gtest_brief=1

  echo "== fuzz smoke run (build-fuzz/)"
  bash scripts/fuzz.sh --time "${PLEXUS_FUZZ_SECONDS:-8}"
fi
