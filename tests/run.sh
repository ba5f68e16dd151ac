#!/usr/bin/env bash
# Runs every test: unit tests, each crate's integration tests, and the end-to-end tests that drive
# the real binaries with the official Python MCP SDK against a real container engine.
#
# MCP_TEST_DOCKER=require (the default) fails when no engine answers; =off skips those tests with
# a printed notice.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -r tests/py/requirements.txt

export MCP_TEST_DOCKER="${MCP_TEST_DOCKER:-require}"
if [ "$MCP_TEST_DOCKER" != off ]; then
    if ! docker version >/dev/null 2>&1; then
        echo "tests/run.sh: no container engine answers; start dockerd (or run bash .ci/run)" >&2
        exit 1
    fi
    bash tests/fixture/build-image.sh mcp-gateway-fixture:test
fi

cargo build --workspace --locked
cargo test --workspace --locked
