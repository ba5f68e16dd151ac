#!/usr/bin/env bash
# Sets up and starts mcp-gateway from this checkout on a Debian machine:
#   1. a container engine (Debian's docker.io) if none answers,
#   2. release builds of mcp-gatewayd, mcpctl and mcp-shim installed in ~/.local/bin, and the
#      statically linked mcp-launcher in ~/.local/libexec/mcp-gateway, where the daemon looks,
#   3. the daemon, socket-activated: through the systemd user manager when there is one
#      (systemctl --user enable --now mcp-gateway.socket), else with systemd-socket-activate.
# Run it as a user who may use the engine (root, or a member of the docker group); installing
# docker.io needs root or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! docker version >/dev/null 2>&1; then
    if ! command -v dockerd >/dev/null 2>&1; then
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
    fi
    if [ "$(ps -p 1 -o comm=)" = systemd ]; then
        as_root systemctl start docker
    else
        as_root sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
    fi
    for _ in $(seq 60); do docker version >/dev/null 2>&1 && break; sleep 1; done
fi
docker version --format 'container engine: {{.Server.Version}}'

cargo build --release --locked -p mcp-gatewayd -p mcpctl -p mcp-shim
bin="$HOME/.local/bin"
mkdir -p "$bin"
install -m 0755 target/release/mcp-gatewayd target/release/mcpctl target/release/mcp-shim "$bin/"
install -D -m 0755 "$(bash launcher/build-static.sh)" "$HOME/.local/libexec/mcp-gateway/mcp-launcher"

runtime="${XDG_RUNTIME_DIR:-/run/user/$(id -u)}"
if systemctl --user show-environment >/dev/null 2>&1; then
    units="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
    mkdir -p "$units"
    install -m 0644 systemd/mcp-gateway.socket "$units/"
    sed "s|^ExecStart=.*|ExecStart=$bin/mcp-gatewayd|" systemd/mcp-gateway.service >"$units/mcp-gateway.service"
    systemctl --user daemon-reload
    systemctl --user enable --now mcp-gateway.socket
else
    # No user manager (a container, a bare root shell): the same activation protocol by hand.
    as_root install -d -m 0700 -o "$(id -u)" -g "$(id -g)" "$runtime"
    if ! "$bin/mcpctl" --socket "$runtime/mcp-gateway.sock" status >/dev/null 2>&1; then
        rm -f "$runtime/mcp-gateway.sock"
        pass=()
        for var in HOME PATH XDG_CONFIG_HOME XDG_STATE_HOME DOCKER_HOST RUST_LOG; do
            [ -n "${!var:-}" ] && pass+=("--setenv=$var")
        done
        nohup systemd-socket-activate --listen="$runtime/mcp-gateway.sock" "${pass[@]}" \
            "$bin/mcp-gatewayd" >"$runtime/mcp-gatewayd.log" 2>&1 &
        for _ in $(seq 50); do [ -S "$runtime/mcp-gateway.sock" ] && break; sleep 0.1; done
        chmod 0600 "$runtime/mcp-gateway.sock"
    fi
fi

export PATH="$bin:$PATH"
mcpctl --socket "$runtime/mcp-gateway.sock" status
echo
echo "mcp-gateway is running. Make sure $bin is on your PATH, then:"
echo "  mcpctl server add NAME --image IMAGE    # an MCP server image present in your engine"
echo "  claude mcp add gateway -- mcp-shim      # or any MCP client: command mcp-shim"
