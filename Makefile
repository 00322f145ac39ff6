# pivox. The README's two commands are `make demo` and `make test`; each installs what it
# needs first (scripts/install-deps.sh).

CARGO ?= cargo
BENCH_TURNS ?= 20
# Turns of the soak in `make bench` (1.5 s each); 0 skips it.
SOAK_TURNS ?= 300

AARCH64 := target/aarch64-unknown-linux-gnu/release/pivox

.PHONY: deps cross-deps test-deps preflight demo check test system-test ha-test bench aarch64 aarch64-check

deps:
	@./scripts/install-deps.sh

cross-deps:
	@./scripts/install-cross-deps.sh

# sfdisk, mtools, debugfs, fakeroot, sshd, mmdebstrap, qemu-system-aarch64, binfmt for aarch64;
# espeak-ng, sox, ffmpeg and curl for the Home Assistant rig; ansible-core (from PyPI) for fleet/.
test-deps:
	@./scripts/install-test-deps.sh

# After the installs, before anything long: every program and file the build and tests use, in
# one message naming whatever is still missing and its Debian package (tests/preflight.sh).
preflight: deps cross-deps test-deps
	@./scripts/check-test-deps.sh

# The main job on an embedded default: the reference server on loopback, simulated devices,
# the bundled speech sample, one turn, a timeline and the turn's figures. The demo and the
# server are development tools (pivox-devtools); the daemon is the Pi's `pivox`.
demo: deps
	$(CARGO) build --release -p pivox -p pivox-devtools
	./target/release/pivox-devtools demo --out target/demo/reply.wav

# Everything CI checks: `check`, then the boot test.
test: check
	$(MAKE) system-test

# Everything but the boot test (a few minutes quicker): formatting, lints, every cargo test,
# the aarch64 build under qemu, the image recipe, deploy.sh, the fleet playbooks and the real
# Home Assistant test.
check: preflight
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	shellcheck -x -S warning deploy.sh fleet/pivox-fleet image/*.sh scripts/*.sh tests/*.sh
	tests/preflight.sh
	$(CARGO) test --workspace
	$(MAKE) aarch64-check
	tests/image.sh $(AARCH64)
	tests/deploy.sh $(AARCH64)
	tests/fleet.sh $(AARCH64)
	$(MAKE) ha-test

# pivox as an ESPHome satellite of a real Home Assistant 2026.2.3 on loopback (../shared/ha-rig).
ha-test: preflight
	$(CARGO) build -p pivox --bin pivox
	tests/ha-esphome.sh target/debug/pivox

# Boots a recipe-built image in qemu-system-aarch64 (tests/system.sh), with the reference server
# on the host (pivox-devtools); the base root file system is cached in ~/.cache/pivox/system-test.
system-test: preflight aarch64
	$(CARGO) build -p pivox -p pivox-devtools --bin pivox --bin pivox-devtools
	tests/system.sh $(AARCH64)

# The Raspberry Pi binary (aarch64, glibc 2.36: Bookworm and Trixie), stripped, without Docker;
# no development tools in it (those are pivox-devtools, for the computer).
aarch64: cross-deps
	$(CARGO) build --release --target aarch64-unknown-linux-gnu -p pivox --bin pivox
	@echo "$(AARCH64): $$(stat -c %s $(AARCH64)) bytes"

# The aarch64 binary under qemu-user: --version, check-config, one whole simulated turn against
# each server kind (run on the host by pivox-devtools).
aarch64-check: aarch64
	$(CARGO) build -p pivox-devtools --bin pivox-devtools
	./scripts/aarch64-check.sh $(AARCH64) target/debug/pivox-devtools

# Latency, CPU, memory and bandwidth figures against a Python-satellite-style baseline, the
# idle cost, the Opus encoder at each complexity, instructions per turn under callgrind (three
# runs), and a soak of SOAK_TURNS turns with memory, open files and threads sampled.
bench: deps
	@./scripts/install-bench-deps.sh
	$(CARGO) build --release -p pivox -p pivox-devtools
	./target/release/pivox-bench --turns $(BENCH_TURNS) --soak $(SOAK_TURNS) --out target/bench/summary.json
