#!/usr/bin/env bash
# Runs every test: unit tests, each crate's integration tests, and the end-to-end tests that drive
# the real binaries with the official Python MCP SDK against a real container engine.
#
# MCP_TEST_DOCKER=require (the default) fails when no engine answers; =off skips those tests with
# a printed notice.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -r tests/py/requirements.txt

# The remote kind's https test (tests/it/remote.rs) makes its CA and certificate with openssl.
if ! command -v openssl >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "tests/run.sh: the https test needs openssl; run: sudo apt-get install openssl" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi

export MCP_TEST_DOCKER="${MCP_TEST_DOCKER:-require}"
if [ "$MCP_TEST_DOCKER" != off ]; then
    if ! docker version >/dev/null 2>&1; then
        echo "tests/run.sh: no container engine answers; start dockerd (or run bash .ci/run)" >&2
        exit 1
    fi
    # The pull tests (tests/it/images.rs) run a registry of their own on loopback.
    if ! command -v docker-registry >/dev/null 2>&1; then
        if [ "$(id -u)" != 0 ]; then
            echo "tests/run.sh: the pull tests need docker-registry; run: sudo apt-get install docker-registry" >&2
            exit 1
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
    fi
fi

# The end-to-end tests run these binaries (and the fixture image is made of one of them), and give
# every daemon the statically linked launcher.
cargo build --workspace --locked
bash launcher/build-static.sh >/dev/null
if [ "$MCP_TEST_DOCKER" != off ]; then
    bash tests/fixture/build-image.sh mcp-gateway-fixture:test
fi
cargo test --workspace --locked
