#!/usr/bin/env bash
# Regenerates the CRI v1 gRPC code, Sources/HuskCRI/Generated/*.swift, from
# Sources/HuskCRI/Proto/api.proto. The output is committed: neither the build nor CI runs protoc
# or builds the plugins (they take minutes on two cores). Run this after changing the proto.
#
# Needs protoc (Debian's protobuf-compiler, installed here when missing) and builds the two
# protoc plugins once, from the same package versions Package.swift uses, in a scratch package
# under /tmp (HUSK_PROTOC_TOOLS to put it elsewhere):
#   protoc-gen-swift          apple/swift-protobuf 1.39.0     (messages)
#   protoc-gen-grpc-swift-2   grpc/grpc-swift-protobuf 2.4.1  (service protocols, server side)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$HUSK_TOP"

tools=${HUSK_PROTOC_TOOLS:-/tmp/husk-protoc-tools}
proto_dir=Sources/HuskCRI/Proto
out=Sources/HuskCRI/Generated

if ! command -v protoc >/dev/null 2>&1; then
  echo "gen-cri: installing protobuf-compiler" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
fi

bin="$tools/.build/debug"
if [ ! -x "$bin/protoc-gen-swift" ] || [ ! -x "$bin/protoc-gen-grpc-swift-2" ]; then
  echo "gen-cri: building the protoc plugins in $tools (once; several minutes)" >&2
  mkdir -p "$tools"
  cat >"$tools/Package.swift" <<'SWIFT'
// swift-tools-version: 6.1
// Scratch package of Husk's Scripts/gen-cri.sh: only builds the two protoc plugins.
import PackageDescription

let package = Package(
    name: "HuskProtocTools",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
    ],
    targets: []
)
SWIFT
  (cd "$tools" && swift build --product protoc-gen-swift && swift build --product protoc-gen-grpc-swift-2)
fi

rm -rf "$out"
mkdir -p "$out"
# Public: the husk-serve executable and the tests use the types from outside HuskCRI.
protoc \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" \
  --proto_path="$proto_dir" \
  --swift_out="$out" --swift_opt=Visibility=Public \
  --grpc-swift-2_out="$out" --grpc-swift-2_opt=Visibility=Public,Server=true,Client=false \
  "$proto_dir/api.proto"

# The same handlers once more under another package (runtime.v1alpha2: its messages are
# wire-identical for the RPCs both versions have, and containerd 1.6/1.7 serve both): a copy of
# each generated registerMethods(with:) whose method descriptors get the package passed in.
{
  echo "// DO NOT EDIT. Made by Scripts/gen-cri.sh from api.grpc.swift: each service's generated"
  echo "// registerMethods(with:), registering the same handlers under the package given."
  echo
  echo "import GRPCCore"
  echo "import GRPCProtobuf"
  awk '
    /^extension Runtime_V1_[A-Za-z]+Service\.StreamingServiceProtocol \{$/ { head = $0; next }
    head != "" && /public func registerMethods<Transport>\(with router: inout GRPCCore\.RPCRouter<Transport>\)/ {
      print ""; print head; copying = 1; head = ""
      sub(/\(with router: inout GRPCCore\.RPCRouter<Transport>\)/, "(with router: inout GRPCCore.RPCRouter<Transport>, package: String)")
      print; next
    }
    { head = "" }
    copying {
      sub(/\.descriptor,$/, ".descriptor.inPackage(package),")
      print
      if ($0 == "}") copying = 0
    }
  ' "$out/api.grpc.swift"
} >"$out/api.alias.swift"
n=$(grep -c "inPackage(package)" "$out/api.alias.swift")
m=$(grep -c "router.registerHandler(" "$out/api.grpc.swift")
if [ "$n" -ne "$m" ]; then
  echo "gen-cri: api.alias.swift registers $n methods, api.grpc.swift $m: the generator's output changed shape" >&2
  exit 1
fi
ls "$out"
