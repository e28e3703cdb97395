#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs every test, then checks that the
# suite left nothing behind (mounts, cgroups, processes, temp dirs).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$HUSK_TOP"

"$HUSK_TOP/Scripts/install-deps.sh"
Scripts/check-leaks.sh --before
swift build --build-tests -Xswiftc -warnings-as-errors
status=0
swift test --skip-build "$@" || status=$?
# The CRI daemon through a client that is not Husk's own code (grpcio, Tests/cri).
if [ $# -eq 0 ] || [ -n "${HUSK_CRI_TESTS:-}" ]; then
  python3 -m pytest -q Tests/cri || status=1
fi
Scripts/check-leaks.sh || status=1
# Every fuzz target, briefly, with libFuzzer (issue 16): HUSK_FUZZ_SECONDS each (default 20).
if [ $# -eq 0 ] && [ -z "${HUSK_NO_FUZZ:-}" ]; then
  Scripts/fuzz.sh all "${HUSK_FUZZ_SECONDS:-20}" || status=1
fi
# The cgroup v2 tier (issue 6): the resource tests in a VM with a pure cgroup v2 hierarchy.
# Only for the whole suite (not when the caller filters), and skippable with HUSK_NO_VM=1.
if [ $# -eq 0 ] && [ -z "${HUSK_NO_VM:-}" ]; then
  Scripts/vm-test.sh || status=1
fi
exit $status
