#!/usr/bin/env bash
# Checks the packages that packaging/build.sh wrote to target/dist/ (it builds nothing):
#   1. both packages hold every expected path (binaries, user units, each generated man page,
#      completions) with the right modes;
#   2. the .deb: `dpkg-deb -I`, its maintainer scripts, lintian (failing on errors and warnings;
#      accepted findings are overridden in packaging/debian/lintian-overrides with reasons), and
#      its dependencies resolved by apt from an empty system;
#   3. the .rpm: `rpm -qip`, `rpm -qlp --scripts`, its requirements, rpmlint;
#   4. an install of the .deb into a fresh root (`dpkg --root` with a new dpkg database), the
#      installed binaries run from there (`--version`; the daemon socket-activated on a temporary
#      socket, answering the installed `mcpctl status`), the installed units verified and driven
#      through a systemd user manager (check-units.sh), then a purge that leaves nothing behind.
# Tools it lacks (lintian, rpm, rpmlint, systemd, man-db) are installed with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

dist="${CARGO_TARGET_DIR:-target}/dist"
generated=packaging/generated

fail() {
    echo "check.sh: $*" >&2
    exit 1
}
step() { echo "== $*"; }

shopt -s nullglob
debs=("$dist"/*.deb)
rpms=("$dist"/*.rpm)
shopt -u nullglob
[ "${#debs[@]}" = 1 ] || fail "expected one .deb in $dist, found ${#debs[@]}; run packaging/build.sh"
[ "${#rpms[@]}" = 1 ] || fail "expected one .rpm in $dist, found ${#rpms[@]}; run packaging/build.sh"
deb=$(realpath "${debs[0]}")
rpm=$(realpath "${rpms[0]}")
[ -d "$generated/man" ] || fail "$generated is missing; run packaging/build.sh"

missing=()
for tool in lintian:lintian rpm:rpm rpmlint:rpmlint systemd-analyze:systemd \
    systemd-socket-activate:systemd man:man-db; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    step "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

work=$(mktemp -d)
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
step "contents"
# Every path both packages must hold, as `mode path`; the man pages are whatever build.sh
# rendered, so a new mcpctl subcommand's page cannot be left out.
expected() {
    local zsh_dir=$1
    echo "0755 /usr/bin/mcp-gatewayd"
    echo "0755 /usr/bin/mcpctl"
    echo "0755 /usr/bin/mcp-shim"
    echo "0755 /usr/libexec/mcp-gateway/mcp-launcher"
    echo "0644 /usr/lib/systemd/user/mcp-gateway.socket"
    echo "0644 /usr/lib/systemd/user/mcp-gateway.service"
    for page in "$generated"/man/*.1.gz; do
        echo "0644 /usr/share/man/man1/$(basename "$page")"
    done
    for program in mcpctl mcp-gatewayd; do
        echo "0644 /usr/share/bash-completion/completions/$program"
        echo "0644 $zsh_dir/_$program"
        echo "0644 /usr/share/fish/vendor_completions.d/$program.fish"
    done
}
# dpkg-deb -c prints `-rwxr-xr-x root/root 123 date time ./usr/bin/x`.
dpkg-deb -c "$deb" | awk '$1 ~ /^-/ {
    m = 0; s = substr($1, 2)
    for (i = 1; i <= 9; i++) { m = m * 2 + (substr(s, i, 1) != "-") }
    path = $6; sub(/^\./, "", path); printf "%04o %s\n", m, path }' | sort >"$work/deb.files"
# rpm prints the whole st_mode in octal (100755); its last four digits are the permissions.
rpm -qp --qf '[%{FILEMODES:octal} %{FILENAMES}\n]' "$rpm" |
    awk '{ print substr($1, length($1) - 3), $2 }' | sort >"$work/rpm.files"
for format in deb rpm; do
    zsh_dir=/usr/share/zsh/vendor-completions
    [ "$format" = rpm ] && zsh_dir=/usr/share/zsh/site-functions
    absent=$(expected "$zsh_dir" | sort | comm -23 - "$work/$format.files")
    [ -z "$absent" ] || fail "the .$format lacks (or has other modes for):"$'\n'"$absent"
    echo "the .$format holds all $(expected "$zsh_dir" | wc -l) expected files"
done

# ---------------------------------------------------------------------------------------------
step "dpkg-deb -I"
dpkg-deb -I "$deb"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = mcp-gateway ] || fail "package name $(field Package)"
depends=$(field Depends)
for needed in "init-system-helpers (>= 1.52)" "docker.io | docker-ce | podman-docker | podman"; do
    [[ "$depends" == *"$needed"* ]] || fail "Depends lacks $needed: $depends"
done
dpkg-deb -e "$deb" "$work/control"
for script in postinst postrm; do
    [ -x "$work/control/$script" ] || fail "no executable $script"
    sh -n "$work/control/$script"
done
grep -q 'deb-systemd-helper --user update-state "$unit"' "$work/control/postinst" ||
    fail "postinst does not record the user units' state"
grep -q 'deb-systemd-helper --user purge mcp-gateway.service mcp-gateway.socket' \
    "$work/control/postrm" || fail "postrm does not purge the user units' state"

step "lintian"
lintian --version
lintian --fail-on error,warning --display-info "$deb"

step "dependencies from an empty system (apt-get --simulate)"
# An empty dpkg status makes apt resolve the whole closure, as on a machine with nothing installed.
mkdir -p "$work/apt"
: >"$work/apt/status"
apt-get --simulate -o Dir::State::status="$work/apt/status" -o Debug::NoLocking=1 \
    install "$deb" >"$work/apt/plan" || {
    cat "$work/apt/plan"
    fail "apt cannot resolve the .deb's dependencies"
}
for package in mcp-gateway docker.io init-system-helpers libc6; do
    grep -q "^Inst $package " "$work/apt/plan" || fail "apt would not install $package"
done
echo "apt installs $(grep -c '^Inst ' "$work/apt/plan") packages, docker.io for the engine"

# ---------------------------------------------------------------------------------------------
step "rpm -qip / -qlp --scripts / --requires"
rpm -qip "$rpm"
rpm -qlp --scripts "$rpm"
requires=$(rpm -qp --requires "$rpm")
echo "$requires"
grep -qxF "(moby-engine or docker-ce or docker or podman)" <<<"$requires" ||
    fail "the .rpm does not require a container engine"
rpm -qp --qf '%{POSTIN}' "$rpm" | tee "$work/post.sh" | grep -q 'install-user-units' ||
    fail "%post does not run systemd-update-helper install-user-units"
rpm -qp --qf '%{PREUN}' "$rpm" | tee "$work/preun.sh" | grep -q 'remove-user-units' ||
    fail "%preun does not run systemd-update-helper remove-user-units"
sh -n "$work/post.sh"
sh -n "$work/preun.sh"

step "rpmlint"
rpmlint --version
rpmlint --config packaging/rpm/rpmlint.toml "$rpm"

# ---------------------------------------------------------------------------------------------
step "install into a fresh root"
root="$work/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
: >"$root/var/lib/dpkg/status"
# Maintainer scripts run on the host with DPKG_ROOT set (what dpkg does for roots without a shell
# of their own); they then leave the units alone, as they must for a root that is not running.
# The root has none of the dependencies: apt resolved those above.
dpkg --root="$root" --force-script-chrootless --force-depends --log=/dev/null -i "$deb"
dpkg --root="$root" -s mcp-gateway | grep -qx 'Status: install ok installed' ||
    fail "dpkg does not record mcp-gateway as installed"
version=$(field Version)
for program in mcp-gatewayd mcpctl mcp-shim; do
    reported=$("$root/usr/bin/$program" --version)
    echo "$reported"
    [ "$reported" = "$program ${version%-*}" ] || fail "$program reports $reported, the package is $version"
done

step "the installed daemon, socket-activated, answers the installed mcpctl"
home="$work/home"
mkdir -p "$home/run" && chmod 0700 "$home/run"
socket="$home/run/mcp-gateway.sock"
env -i PATH="$PATH" HOME="$home" XDG_RUNTIME_DIR="$home/run" DOCKER_HOST="${DOCKER_HOST:-}" \
    systemd-socket-activate --listen="$socket" -E HOME -E XDG_RUNTIME_DIR -E DOCKER_HOST \
    "$root/usr/bin/mcp-gatewayd" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.1; done
HOME="$home" XDG_RUNTIME_DIR="$home/run" "$root/usr/bin/mcpctl" status ||
    { cat "$work/daemon.log"; fail "the installed mcpctl got no status from the installed daemon"; }
# Status connected the daemon to the engine, which is when it says how servers' stdio will go: the
# installed launcher must be found and statically linked.
grep -q "servers' stdio over the daemon's sockets" "$work/daemon.log" ||
    { cat "$work/daemon.log"; fail "the installed daemon does not use the installed launcher"; }
kill -TERM "$daemon_pid"
wait "$daemon_pid" || { cat "$work/daemon.log"; fail "the daemon did not exit cleanly on SIGTERM"; }
daemon_pid=

step "the installed units: systemd-analyze --user verify, then under a systemd user manager"
unshare --mount bash packaging/check-units.sh "$root" "$work/units"

step "purge"
dpkg --root="$root" --force-script-chrootless --log=/dev/null --purge mcp-gateway
left=$(find "$root" -path "$root/var/lib/dpkg" -prune -o ! -type d -print)
[ -z "$left" ] || fail "purging left files behind: $left"
echo "packages check out: $(basename "$deb"), $(basename "$rpm")"
