# frakti build. `make` installs what is missing, compiles the host side,
# builds the guest agent, initrd and kernel, and leaves ./bin/frakti.
# Every step is keyed on its inputs, so a second `make` does nothing.

SHELL := /bin/bash
BUILD := build
GUEST := $(BUILD)/guest
TS_SOURCES := $(shell find src test bench -name '*.ts' 2>/dev/null)
PROTO_SOURCES := $(shell find src -name '*.proto' 2>/dev/null)

.PHONY: all deps release test test-unit test-integration test-faults clean bench-%

all: $(BUILD)/.deps node_modules/.installed dist/.built guest

$(BUILD)/.deps: scripts/install-deps.sh
	scripts/install-deps.sh
	@mkdir -p $(BUILD) && touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# tsc writes only JavaScript; proto files are read at run time from src/.
dist/.built: $(TS_SOURCES) $(PROTO_SOURCES) tsconfig.json node_modules/.installed
	npx tsc -p tsconfig.json
	@touch $@

include initrd/initrd.mk

guest: $(GUEST)/vmlinux $(GUEST)/initrd.img

$(GUEST)/vmlinux: guest-kernel/build.sh guest-kernel/frakti.config | $(BUILD)/.deps
	guest-kernel/build.sh $(GUEST)
	@touch $@

# The single executable: Node (this machine's official build, stripped), the
# bundled JavaScript and every shipped file as SEA assets (scripts/build-release.mjs).
RELEASE := $(BUILD)/release/frakti
release: $(RELEASE)

$(RELEASE): dist/.built scripts/build-release.mjs $(GUEST)/vmlinux $(GUEST)/initrd.img $(GUEST)/bare-initrd.img $(BUILD)/bin/frakti-vsock-relay $(BUILD)/bin/frakti-spawner
	@mkdir -p $(@D)
	node scripts/build-release.mjs $@

# Tests run the compiled JavaScript with node's own test runner.
# FRAKTI_TEST_FILTER narrows to files whose path contains the word.
TEST_FILES = $(shell find dist/test -name '*.test.js' | sort | grep -- "$(FRAKTI_TEST_FILTER)")

# The release is built first: test/integration/cli/release.test.ts runs it.
test: all release
	node --test --test-concurrency=1 $(TEST_FILES)

test-unit: all
	node --test $(filter dist/test/unit/%,$(TEST_FILES))

# The fault suite with its long schedule (`make test` runs its short one):
# FRAKTI_FAULT_SEED=<seed> replays a run, FRAKTI_FAULT_LIFECYCLES=<n> sets its size.
test-faults: all
	FRAKTI_FAULTS=long node --test --test-concurrency=1 $(filter dist/test/faults/%,$(TEST_FILES))

# Benchmarks: bench/NAME.ts; the last line printed is one JSON object.
bench-release: all release
	node dist/bench/release.js

bench-%: all
	node dist/bench/$*.js

clean:
	rm -rf dist $(BUILD)
