#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds each (default 20), starting from the committed seed
# corpus, and fails on the first crash. Installs the pinned cargo-fuzz when it is missing.
# cargo-fuzz needs nightly features (sanitizers, -Z flags); RUSTC_BOOTSTRAP=1 lets the stable
# toolchain provide them.
#
# Usage: fuzz/run.sh [SECONDS]   or   fuzz/run.sh --install (only install cargo-fuzz)
# A crash leaves its input in fuzz/artifacts/TARGET/; add it to fuzz/corpus/TARGET/ with the fix.
set -euo pipefail

seconds="${1:-20}"
cargo_fuzz_version=0.13.2
cd "$(dirname "${BASH_SOURCE[0]}")"

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
    cargo install --locked "cargo-fuzz@$cargo_fuzz_version"
fi
if [ "$seconds" = --install ]; then
    exit 0
fi

export RUSTC_BOOTSTRAP=1
# Debug builds without a sanitizer: the code under test is safe Rust, so a finding is a panic or
# a failed assertion (overflow checks included), and such a build compiles in a fraction of the
# time of an optimised, address-sanitised one, which matters for a run of seconds in CI.
flags=(--dev --sanitizer none)
cargo fuzz build "${flags[@]}"
for target in $(cargo fuzz list); do
    # New inputs the run finds go to a scratch directory: the committed corpus stays the small,
    # hand-made seed set.
    scratch="$(mktemp -d)"
    echo "fuzz: $target for ${seconds}s"
    cargo fuzz run "${flags[@]}" "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 2>&1 | tail -n 12
    rm -rf "$scratch"
done
