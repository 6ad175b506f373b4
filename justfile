# mediajobs tasks. Each recipe wraps a script, so `just` is optional.

# Run the server on the embedded default (SQLite, ./data, local whisper model).
run:
    scripts/run.sh

# The whole test suite (installs what it needs, starts PostgreSQL).
test:
    scripts/test.sh

# Benchmarks; figures are recorded in docs/benchmarks.md.
bench:
    cargo bench -p jobs-core --bench engine
    cargo bench -p mediajobs-persistence --bench queue -- --jobs 2000
    # The shared queue bake-off with mediajobs beside the peers (installs them on first use).
    EXTRA_SYSTEM_NAME=mediajobs EXTRA_SYSTEM_CMD=$PWD/scripts/queue-bench bash ../shared/bakeoff/run.sh
    # Set WHISPER_CLI to compare with whisper.cpp's CLI (docs/benchmarks.md says how).
    cargo bench -p mediajobs-processor --bench media -- --runs 3

# Formatting and lints as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings
