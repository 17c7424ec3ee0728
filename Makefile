# The README's two commands are `make run` and `make test`; both run the
# idempotent setup first, so they work on a fresh clone.
.PHONY: setup run test bench lint

setup:
	scripts/setup

# The main job: the router served over the embedded default, the simulated
# pool (no config, no API keys). Ask it with the curl line in README.md.
run: setup
	cargo run -q -p switchyard -- serve

# Every test: the host and workspace tests against the built components,
# and the plugins' own unit tests run natively.
test: setup
	cargo test --workspace
	cargo test --manifest-path plugins/Cargo.toml --target-dir target/plugins-native

bench: setup
	cargo bench -p switchyard --bench plugin

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo fmt --manifest-path plugins/Cargo.toml --all --check
	cargo clippy --manifest-path plugins/Cargo.toml --target-dir target/plugins-native --all-targets -- -D warnings
