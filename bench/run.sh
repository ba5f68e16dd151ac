#!/usr/bin/env bash
# Builds everything the benchmark measures and runs it: the release binaries, the shim's dist
# build (for its size), the static launcher the daemon is given (tests/harness), the fixture image under the benchmark's own tag (rebuilt each time, so it
# matches this tree), then `mcp-gateway-bench` with the given arguments (default: `all`).
#
# Usage: bench/run.sh [all|latency|cold|scale|footprint|leaks] [--quick] [--json] [...]
set -euo pipefail

workspace="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$workspace"

cargo build --release --locked --workspace >&2
cargo build --profile dist --locked -p mcp-shim >&2
bash launcher/build-static.sh >/dev/null
bash tests/fixture/build-image.sh --release mcp-gateway-fixture:bench >/dev/null

if [ "$#" -eq 0 ]; then
    set -- all
fi
exec target/release/mcp-gateway-bench "$@"
