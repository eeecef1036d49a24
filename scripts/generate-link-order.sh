#!/usr/bin/env bash
# Writes link/player-first.order: the symbols of the player's own modules (and of the
# libraries only the player uses): functions, and the type metadata, witness tables and
# constants beside them, which Package.swift asks lld to place first in their sections. The backend's code (NIO, Hummingbird, gRPC, OpenTelemetry, PostgreSQL,
# BoringSSL…) then follows in one block instead of interleaving with the player's, and a
# process that only plays (`--headless`, `--offline`, the player on a remote server) faults
# in fewer of its pages: the kernel maps code in 64 KiB windows around each first touch,
# so every player function in a window of backend code brought that backend code in; the
# same goes for the metadata the runtime reads. Functions alone gained 0.2 MB of 1.5.
# Run after a release build (swift build -c release --static-swift-stdlib); names that
# have since gone are ignored by the linker, new ones are placed after the list, so the
# file need only be regenerated after large changes to the player.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-.build/release}
nm=$(command -v llvm-nm || echo /opt/swift/usr/bin/llvm-nm)
modules=(musit_tui MusitApp MusitAudio MusitTerminal MusitRender MusitViewModel MusitArt MusitImage MusitLibrary
         MusitConfig MusitClient MusitAPI ArgumentParser ArgumentParserToolInfo Logging)
for m in "${modules[@]}"; do
    [ -d "$build/$m.build" ] || { echo "generate-link-order: no $build/$m.build; build first" >&2; exit 1; }
    "$nm" --defined-only --format=just-symbols "$build/$m.build"/*.o
done | awk 'NF' | LC_ALL=C sort -u > link/player-first.order
echo "generate-link-order: $(wc -l < link/player-first.order) symbols in link/player-first.order"
