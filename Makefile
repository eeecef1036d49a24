# Musit: `make run` plays the demo music, `make test` runs every test.
SWIFT ?= swift
TEST_AUDIO ?= $(CURDIR)/.build/test-audio

.PHONY: all deps build run test test-audio bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

run: build
	.build/debug/musit-tui

test-audio: deps
	scripts/make-test-audio.sh $(TEST_AUDIO)

test: deps test-audio
	MUSIT_TEST_AUDIO=$(TEST_AUDIO) $(SWIFT) test

bench: deps
	bench/run.sh

clean:
	rm -rf .build
