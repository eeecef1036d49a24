# Musit: `make run` plays the demo music, `make test` runs every test.
SWIFT ?= swift
TEST_AUDIO ?= $(CURDIR)/.build/test-audio

.PHONY: all deps build run test test-audio bench clean image deploy-check

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

run: build
	.build/debug/musit-tui

test-audio: deps
	scripts/make-test-audio.sh $(TEST_AUDIO)

# Serial: several tests measure real time, and on two cores parallel tests that
# wait on processes would starve the cooperative pool the timing tests run on.
# The API fuzzing, the event log's hammer and crash tests, the HTTP checks, the services
# over gRPC (a Python client, the split deployment), the release binary's smoke run and
# the container image built from it (podman) come first; the test suite follows, the server
# suite again over the split's path (every service over gRPC on loopback ports), the
# kitty graphics check in a pseudo-terminal, then the server suite (both ways) and the
# hammer again on a throwaway PostgreSQL.
test: deps test-audio
	$(SWIFT) build
	scripts/api-fuzz.sh
	scripts/sync-tests.sh
	scripts/http-tests.sh
	scripts/grpc-tests.sh
	scripts/release-smoke.sh $(TEST_AUDIO)
	scripts/deploy-check.sh
	MUSIT_TEST_AUDIO=$(TEST_AUDIO) SWIFT=$(SWIFT) scripts/swift-test.sh --no-parallel
	MUSIT_TEST_SPLIT=1 MUSIT_TEST_AUDIO=$(TEST_AUDIO) SWIFT=$(SWIFT) scripts/swift-test.sh --skip-build --no-parallel --filter MusitServerTests
	python3 Tests/look/kitty.py .build/debug/musit-tui $(TEST_AUDIO)
	MUSIT_TEST_AUDIO=$(TEST_AUDIO) scripts/postgres-tests.sh

# localhost/musit:dev with podman, offline (MUSIT_BIN=path takes a release binary already built).
image: deps
	scripts/make-image.sh

# The image built and run as a user would: health, a non-root user, an upload streamed back, SIGTERM.
deploy-check: deps test-audio
	scripts/deploy-check.sh

bench: deps
	bench/run.sh

clean:
	rm -rf .build
