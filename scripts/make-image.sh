#!/usr/bin/env bash
# Builds localhost/musit:dev with podman, offline: the Dockerfile's runtime stage on
# localhost/debian:bookworm-slim (made with debootstrap from the host's Debian mirror and
# imported when missing), with a release binary built on the host (MUSIT_BIN, or built
# here) as the `prebuilt` stage. `docker build .` builds in a Swift container instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/deploy/containers.conf}
image=${MUSIT_IMAGE:-localhost/musit:dev}
base=localhost/debian:bookworm-slim
for tool in podman debootstrap; do
    command -v "$tool" >/dev/null || { echo "make-image: $tool is missing (make deps)" >&2; exit 2; }
done
bin=${MUSIT_BIN:-}
if [ -z "$bin" ]; then
    ${SWIFT:-swift} build -c release --product musit-tui --static-swift-stdlib 2>&1 | tail -1
    bin=.build/release/musit-tui
fi
if ! podman image exists "$base"; then
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
    mirror=${mirror:-$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
    mirror=${mirror:-http://deb.debian.org/debian}
    rootfs=$(mktemp -d)
    echo "make-image: making $base with debootstrap from $mirror"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > /dev/null
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" -c . | podman import -q - "$base" > /dev/null
    rm -rf "$rootfs"
fi
# A context of two files: the Dockerfile and the binary without its debug sections. Docker's
# image format keeps the HEALTHCHECK (OCI's has none).
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp Dockerfile "$context/"
objcopy --strip-debug "$bin" "$context/musit-tui"
podman build -q --format docker --pull=never --network host --build-arg BASE_IMAGE="$base" --build-arg BINARY_STAGE=prebuilt \
    -t "$image" "$context" > /dev/null
echo "make-image: $image ($(podman image inspect "$image" --format '{{.Size}}' | awk '{printf "%.0f MB", $1 / 1e6}'))"
