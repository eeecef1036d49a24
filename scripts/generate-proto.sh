#!/usr/bin/env bash
# Regenerates Sources/MusitRPC from the contracts in proto/: messages with swift-protobuf's
# protoc-gen-swift, clients and servers with grpc-swift-protobuf's protoc-gen-grpc-swift-2.
# The output is committed, so a build needs neither protoc nor the plugins.
#
#   scripts/generate-proto.sh           regenerate in place
#   scripts/generate-proto.sh --check   regenerate into a scratch folder and fail when it
#                                       differs from what is committed (CI)
#
# protoc is Debian's (protobuf-compiler). The plugins are built from the very versions
# Package.swift resolves (its checkouts), in a cache outside the clone
# (MUSIT_PROTOC_PLUGINS, default ~/.cache/musit/protoc-plugins), once.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
out=Sources/MusitRPC
check=false
[ "${1:-}" = "--check" ] && check=true

command -v protoc >/dev/null || { echo "generate-proto: protoc is missing (apt-get install protobuf-compiler)" >&2; exit 2; }
cache=${MUSIT_PROTOC_PLUGINS:-${XDG_CACHE_HOME:-$HOME/.cache}/musit/protoc-plugins}
mkdir -p "$cache"
$SWIFT package resolve >/dev/null
plugin() {  # package product → path of the built plugin
    local package=$1 product=$2
    $SWIFT build --package-path ".build/checkouts/$package" --scratch-path "$cache/$package" \
        --product "$product" >&2
    echo "$cache/$package/debug/$product"
}
swift_plugin=$(plugin swift-protobuf protoc-gen-swift)
grpc_plugin=$(plugin grpc-swift-protobuf protoc-gen-grpc-swift-2)

target=$out
if $check; then
    target=$(mktemp -d)
    trap 'rm -rf "$target"' EXIT
fi
mapfile -t protos < <(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
rm -f "$target"/*.pb.swift "$target"/*.grpc.swift
protoc --proto_path=proto \
    --plugin=protoc-gen-swift="$swift_plugin" --plugin=protoc-gen-grpc-swift-2="$grpc_plugin" \
    --swift_out="$target" --swift_opt=Visibility=Public,FileNaming=PathToUnderscores \
    --grpc-swift-2_out="$target" --grpc-swift-2_opt=Visibility=Public,FileNaming=PathToUnderscores,Client=true,Server=true \
    "${protos[@]}"

if $check; then
    if ! diff -r -x '*.md' "$out" "$target" >/dev/null; then
        diff -r -x '*.md' "$out" "$target" | head -40 >&2
        echo "generate-proto: Sources/MusitRPC differs from what proto/ generates: run scripts/generate-proto.sh" >&2
        exit 1
    fi
    echo "generate-proto: Sources/MusitRPC matches proto/ (${#protos[@]} files)"
else
    echo "generate-proto: generated ${#protos[@]} files into $out"
fi
