#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer (issue 16, "Fuzzing"):
#
#   Scripts/fuzz.sh [TARGET|all] [SECONDS]     (default: all, 60 s each)
#
# Builds husk-fuzz (Sources/husk-fuzz) with HUSK_FUZZ=1 into .build-fuzz: the Swift with
# -sanitize=fuzzer, the C of the layer unpacker with -fsanitize=fuzzer-no-link, so libFuzzer
# sees the coverage of both. Each target starts from its seeds in Tests/Fuzz/TARGET (copied to
# a temporary corpus, so the repository's seeds stay as they are) and runs SECONDS, with
# 2 GB of memory and 10 s per input at most. A crash, a leak past the limits or a timeout
# fails the run; the input is kept in .build-fuzz/crashes/TARGET/ and becomes a regression
# input (copy it to Tests/Fuzz/TARGET: the tests replay every seed). Prints executions per
# target.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
targets="manifest json oci reference quantity hpack grpc tar spdy"
what=${1:-all}
seconds=${2:-60}
[ "$what" = all ] && what=$targets
for t in $what; do case " $targets " in *" $t "*) ;; *) echo "fuzz: no target $t (targets: $targets)" >&2; exit 2 ;; esac; done

echo "fuzz: building husk-fuzz with libFuzzer ..." >&2
cd "$top"
HUSK_FUZZ=1 swift build --product husk-fuzz --build-path .build-fuzz \
  -Xswiftc -sanitize=fuzzer -Xcc -fsanitize=fuzzer-no-link >&2
bin=$(HUSK_FUZZ=1 swift build --product husk-fuzz --build-path .build-fuzz --show-bin-path)/husk-fuzz

failed=0
for t in $what; do
  corpus=$(mktemp -d /tmp/husk-fuzz-corpus-XXXXXX)
  cp "Tests/Fuzz/$t"/* "$corpus/" 2>/dev/null || true
  mkdir -p ".build-fuzz/crashes/$t"
  log=$(mktemp /tmp/husk-fuzz-log-XXXXXX)
  set +e
  # Swift's backtracer off, so that libFuzzer's own signal handlers write the crashing input.
  SWIFT_BACKTRACE=enable=no HUSK_FUZZ_TARGET=$t "$bin" "$corpus" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -max_len=65536 -artifact_prefix=".build-fuzz/crashes/$t/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  runs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz $t: ${runs:-?} executions in ${seconds}s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) inputs, no finding"
  else
    failed=1
    cp "$log" ".build-fuzz/crashes/$t/log"
    echo "fuzz $t: FAILED (exit $rc) after ${runs:-?} executions; input and log kept in .build-fuzz/crashes/$t/" >&2
    grep -E "ERROR|Fatal error|failure|panic|SUMMARY|deadly signal|timeout|Test unit written" "$log" | head -20 >&2 || true
  fi
  rm -rf "$corpus" "$log"
done
exit $failed
