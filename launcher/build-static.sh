#!/usr/bin/env bash
# Builds mcp-launcher statically linked, as it must be to run in any image, and prints its path
# (target/static/mcp-launcher). It is built for the host's target triple named explicitly, so that
# the static flags stay off the build scripts, in a target directory of its own, so that it does
# not rebuild the workspace's dynamically linked binaries. Not position-independent: a static PIE
# is a shared object to the tools that inspect packages (lintian), and the launcher lives only
# until it execs the server, which gains nothing from its own address randomisation.
#
# Usage: launcher/build-static.sh [--profile PROFILE]   (default release)
set -euo pipefail

profile=release
if [ "${1:-}" = --profile ]; then
    profile=$2
fi

workspace="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$workspace/target}"
triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static' cargo build --quiet --locked --profile "$profile" \
    --manifest-path "$workspace/Cargo.toml" -p mcp-launcher --target "$triple" \
    --target-dir "$target_dir/static" >&2
# cargo calls the dev profile's directory debug.
case $profile in dev) dir=debug ;; *) dir=$profile ;; esac
install -s -m 0755 "$target_dir/static/$triple/$dir/mcp-launcher" "$target_dir/static/mcp-launcher"
echo "$target_dir/static/mcp-launcher"
