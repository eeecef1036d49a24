# Musit: one image for every role (`--role`). With no arguments it runs all-in-one on
# 0.0.0.0:8080 with its data in /data.
#
#   docker build -t musit .                       build in the container (Swift 6.x image)
#   make image                                    here: podman, offline, from a host-built binary
#                                                 (the `prebuilt` stage; see scripts/make-image.sh)
ARG SWIFT_IMAGE=swift:6.1-bookworm
ARG BASE_IMAGE=debian:bookworm-slim
ARG BINARY_STAGE=build

# --- build: a static-stdlib release binary ---------------------------------------------------
FROM ${SWIFT_IMAGE} AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        pkg-config libncursesw5-dev libasound2-dev libmpg123-dev libflac-dev libvorbis-dev libopusfile-dev libsystemd-dev libsqlite3-dev libpng-dev libturbojpeg0-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN swift build -c release --product musit-tui --static-swift-stdlib \
    && install -D .build/release/musit-tui /out/musit-tui

# --- prebuilt: a binary built on the host, given in the build context as musit-tui ---------------
FROM scratch AS prebuilt
COPY musit-tui /out/musit-tui

FROM ${BINARY_STAGE} AS binary

# --- runtime: the libraries the binary links, a user, two volumes --------------------------------
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends \
        libasound2 libmpg123-0 libflac12 libvorbisfile3 libopusfile0 libncursesw6 libpng16-16 libsqlite3-0 libstdc++6 libturbojpeg0 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man \
    && groupadd --gid 10001 musit \
    && useradd --uid 10001 --gid musit --no-create-home --home-dir /data --shell /usr/sbin/nologin musit \
    && mkdir -p /data /media /keys \
    && chown musit:musit /data /media /keys && chmod 0700 /data /keys
COPY --from=binary /out/musit-tui /usr/local/bin/musit-tui
USER musit
ENV MUSIT_HOST=0.0.0.0 MUSIT_PORT=8080 MUSIT_DATA=/data MUSIT_MEDIA=/media MUSIT_LOG_FORMAT=json
VOLUME ["/data", "/media"]
EXPOSE 8080 9101
# The probe is the binary itself: the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/musit-tui", "--probe", "http://127.0.0.1:8080/healthz"]
# Run with --init (compose: init: true) so that PID 1 forwards SIGTERM and reaps; the server
# also stops cleanly when it is PID 1 itself.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/musit-tui", "--serve"]
