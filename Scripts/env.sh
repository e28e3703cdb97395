# Sourced by the other scripts: puts the Swift toolchain on PATH and names the build dirs.
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
HUSK_TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Release build: one static executable per tool (fast start-up, measured in Scripts/bench.sh).
HUSK_RELEASE_SCRATCH="$HUSK_TOP/.build-release"
husk_build_release() {
  local log
  log=$(mktemp)
  if ! (cd "$HUSK_TOP" && swift build -c release -Xswiftc -static-executable --scratch-path "$HUSK_RELEASE_SCRATCH" "$@") >"$log" 2>&1; then
    grep -v -E "statically linked applications requires at runtime|use of .mktemp. is dangerous" "$log" >&2
    rm -f "$log"
    echo "build failed" >&2
    return 1
  fi
  rm -f "$log"
}
