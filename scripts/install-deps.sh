#!/usr/bin/env bash
# Installs the Debian packages Musit builds, runs and tests with. Idempotent:
# does nothing when everything is present. Run as root (or with sudo available).
set -euo pipefail
packages=(
    pkg-config libncursesw5-dev libasound2-dev libmpg123-dev libflac-dev libvorbis-dev libopusfile-dev libsystemd-dev libsqlite3-dev libpng-dev libturbojpeg0-dev  # build
    ncurses-term alsa-utils                                                 # run: terminfo, ALSA config
    sox lame python3-mutagen tmux                                           # tests: audio fixtures, terminal
    flac vorbis-tools opus-tools dbus playerctl                             # tests: reference decoders, MPRIS
    mpg123 time pv cmus                                                     # benchmarks: peers, /usr/bin/time, pacing
    ffmpeg curl                                                             # tests: an HLS client; API fuzzing
    prometheus                                                              # tests: promtool check metrics
    postgresql nginx-light                                                  # tests: PostgreSQL, several instances behind nginx
    protobuf-compiler                                                       # tests: generated gRPC code matches proto/
    podman buildah runc slirp4netns uidmap catatonit                        # tests: the container image, offline
    containernetworking-plugins golang-github-containers-common debootstrap
    docker-compose                                                          # tests: compose.yaml as docker-compose reads it
)
# Python tools the tests use: an OpenAPI validator.
python3 -c "import openapi_spec_validator, yaml" 2>/dev/null ||
    python3 -m pip install -q "openapi-spec-validator==0.9.0" pyyaml
command -v schemathesis >/dev/null || python3 -m pip install -q "schemathesis==4.32.5"
# A stock gRPC client for the services' tests, its code generated from proto/.
# And an OTLP receiver's message types, for the tracing test.
python3 -c "import grpc, grpc_tools, grpc_health, opentelemetry.proto" 2>/dev/null ||
    python3 -m pip install -q "grpcio==1.85.4" "grpcio-tools==1.85.4" "grpcio-health-checking==1.85.1" "opentelemetry-proto==1.45.0"
# The compose stack: podman-compose runs it (Debian's 1.0.3 cannot); the compose
# specification's schema checks it.
command -v podman-compose >/dev/null && command -v check-jsonschema >/dev/null ||
    python3 -m pip install -q "podman-compose==1.6.0" "check-jsonschema==0.39.0"

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
