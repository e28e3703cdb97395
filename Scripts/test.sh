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
Scripts/check-leaks.sh || status=1
exit $status
