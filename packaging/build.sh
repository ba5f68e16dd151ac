#!/usr/bin/env bash
# Builds the .deb and the .rpm of mcp-gateway into target/dist/:
#   1. cargo-deb and cargo-generate-rpm, pinned, installed with `cargo install --locked` if missing;
#   2. mcp-gatewayd, mcpctl and mcp-shim with the `dist` profile (thin LTO, stripped), and
#      mcp-launcher statically linked (launcher/build-static.sh);
#   3. man pages and shell completions rendered from the clap definitions (packaging/src/),
#      plus mcp-shim's hand-written page and a Debian changelog, into packaging/generated/;
#   4. the packages, from the metadata in packaging/Cargo.toml.
# packaging/check.sh then checks what this wrote. `build.sh --tools` does only step 1.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1

# `cargo install` only when the pinned version is not the one on PATH.
ensure_tool() {
    local crate=$1 version=$2
    shift 2
    if ! "$crate" --version 2>/dev/null | grep -qxF "$crate $version"; then
        cargo install --locked --quiet "$@" "$crate@$version"
    fi
}
# Without its default features cargo-deb compresses with the system's xz instead of a bundled
# liblzma, which saves compiling C on a fresh machine.
ensure_tool cargo-deb "$CARGO_DEB_VERSION" --no-default-features
ensure_tool cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION"
if [ "${1:-}" = --tools ]; then
    exit 0
fi

out="${CARGO_TARGET_DIR:-target}/dist"

cargo build --locked --profile dist -p mcp-gatewayd -p mcpctl -p mcp-shim
bash launcher/build-static.sh --profile dist >/dev/null

generated=packaging/generated
cargo run --locked --quiet -p mcp-gateway-packaging -- "$generated"
cp packaging/man/mcp-shim.1 "$generated/man/"
# Debian wants a changelog in every package; one entry for the version being built, dated by the
# last commit so that rebuilding the same tree gives the same file.
version=$(cargo pkgid --quiet -p mcp-gateway-packaging)
version=${version##*[#@]}
date=$(git log -1 --format=%aD 2>/dev/null || date -R)
cat >"$generated/changelog" <<EOF
mcp-gateway ($version-1) unstable; urgency=medium

  * mcp-gateway $version, packaged from its source tree by packaging/build.sh.

 -- mcp-gateway developers <mcp-gateway@example.invalid>  $date
EOF
# Compressed once here for both formats (cargo-deb would gzip them, cargo-generate-rpm would not);
# -n keeps names and times out of the archives.
gzip -9n "$generated"/man/*.1

rm -f "$out"/*.deb "$out"/*.rpm
# The binaries are already stripped by the dist profile.
cargo deb --quiet -p mcp-gateway-packaging --no-build --no-strip --profile dist --output "$out/"
cargo generate-rpm -p packaging --profile dist --output "$out/"

ls -l "$out"/*.deb "$out"/*.rpm
