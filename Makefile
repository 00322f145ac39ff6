# pivox. The README's two commands are `make demo` and `make test`; each installs what it
# needs first (scripts/install-deps.sh).

CARGO ?= cargo
BENCH_TURNS ?= 20

.PHONY: deps demo test bench

deps:
	@./scripts/install-deps.sh

# The main job on an embedded default: the reference server on loopback, simulated devices,
# the bundled speech sample, one turn, a timeline and the turn's figures.
demo: deps
	$(CARGO) build --release -p pivox
	./target/release/pivox demo --out target/demo/reply.wav

# Everything CI checks: formatting, lints, every test.
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

# Latency, CPU, memory and bandwidth figures against a Python-satellite-style baseline.
bench: deps
	$(CARGO) build --release -p pivox
	./target/release/pivox-bench --turns $(BENCH_TURNS) --out target/bench/summary.json
