#!/usr/bin/env bash
# Part of packaging/check.sh, which runs it as `unshare --mount bash check-units.sh ROOT WORK`
# (ROOT holds a fresh install of the .deb). In that private mount namespace it lays ROOT/usr over
# the host's /usr, so that systemd, man and the shell find the installed files at their real
# paths, and then checks the README's promise under a real systemd user manager:
#   1. `systemd-analyze --user verify` of the installed units, with the installed man pages;
#   2. `systemctl --user enable --now mcp-gateway.socket` starts nothing until the first
#      connection, which starts the daemon (Type=notify: ready, its status in words, the
#      watchdog), with the unit's hardening in force, logging to the journal (a stand-in that
#      records what it gets), serving `mcpctl` and an `mcp-shim` session;
#   3. `systemctl --user stop` stops it cleanly, and the next connection starts it again;
#   4. with a short idle time (a drop-in), it exits by itself, cleanly, and the next connection
#      starts it again.
# The manager is this script's own: a tmpfs over /run/systemd with an empty system/ in it is all
# it needs to believe systemd booted, and it starts in a cgroup of its own; nothing else of it
# leaves the namespace.
set -euo pipefail
root=$1
work=$2

fail() {
    echo "check-units.sh: $*" >&2
    [ -f "$work/manager.log" ] && tail -n 30 "$work/manager.log" >&2
    exit 1
}

mount -t overlay overlay -o "lowerdir=$root/usr:/usr" /usr

mkdir -p "$work/run" "$work/home"
chmod 0700 "$work/run"
export XDG_RUNTIME_DIR="$work/run" HOME="$work/home"
unset XDG_CONFIG_HOME XDG_STATE_HOME MCP_GATEWAY_SOCKET

systemd-analyze --user verify \
    /usr/lib/systemd/user/mcp-gateway.socket /usr/lib/systemd/user/mcp-gateway.service
echo "the installed units verify"

# The directories, one per cgroup hierarchy, of a new cgroup below this process's own. The manager
# files every process of the cgroup it starts in under an init.scope of its own making: started in
# a cgroup that holds nothing else, it moves nobody but itself.
own_cgroups() {
    local fstype root mountpoint options key line path
    awk '{ for (i = 7; $i != "-"; i++); print $(i + 1), $4, $5, $(i + 3) }' /proc/self/mountinfo |
        while read -r fstype root mountpoint options; do
            case $fstype in
                cgroup2) key= ;;
                cgroup) key=$(tr , '\n' <<<"$options" |
                    grep -E "^name=|^($(awk 'NR > 1 { printf "%s%s", sep, $1; sep = "|" }' /proc/cgroups))$" |
                    paste -sd,) ;;
                *) continue ;;
            esac
            line=$(grep -m1 "^[0-9]*:$key:" /proc/self/cgroup) || continue
            path=${line#*:"$key":}
            [ "$root" = / ] || path=${path#"$root"}
            echo "${mountpoint%/}${path%/}/mcp-gateway-check-$$"
        done
}
mapfile -t cgroups < <(own_cgroups)
[ "${#cgroups[@]}" -gt 0 ] || fail "no cgroup hierarchy found for the user manager"
for cgroup in "${cgroups[@]}"; do
    mkdir -p "$cgroup"
    # A new cgroup v1 cpuset has no CPUs or memory nodes until given its parent's.
    for file in cpuset.cpus cpuset.mems; do
        [ -f "$cgroup/$file" ] && cat "$cgroup/../$file" >"$cgroup/$file"
    done
done

[ -d /run/systemd ] || mkdir /run/systemd
mount -t tmpfs tmpfs /run/systemd
mkdir /run/systemd/system

# A stand-in journald on the two sockets units log through: the stream a service's stdout and
# stderr are connected to (whose device:inode systemd puts in JOURNAL_STREAM), and the datagram
# socket of the native protocol. Both record what they receive.
cat >"$work/journald.py" <<'EOF'
import os, socket, sys, threading

out_dir = sys.argv[1]
os.makedirs("/run/systemd/journal", exist_ok=True)
native = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
native.bind("/run/systemd/journal/socket")
streams = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
streams.bind("/run/systemd/journal/stdout")
streams.listen(16)


def record_stream(conn):
    with open(os.path.join(out_dir, "journal-stream.log"), "ab") as out:
        while data := conn.recv(65536):
            out.write(data)
            out.flush()


def accept_streams():
    while True:
        conn, _ = streams.accept()
        threading.Thread(target=record_stream, args=(conn,), daemon=True).start()


def fields(entry):
    """KEY=VALUE lines of an entry in the native protocol: `KEY=VALUE\\n`, or `KEY\\n`, a 64-bit
    little-endian length, the value and `\\n` for values that may hold newlines."""
    while entry:
        line_end = entry.find(b"\n")
        equals = entry.find(b"=", 0, line_end)
        if equals >= 0:
            yield entry[:line_end] + b"\n"
            entry = entry[line_end + 1 :]
        else:
            size = int.from_bytes(entry[line_end + 1 : line_end + 9], "little")
            value = entry[line_end + 9 : line_end + 9 + size]
            yield entry[:line_end] + b"=" + value + b"\n"
            entry = entry[line_end + 10 + size :]


threading.Thread(target=accept_streams, daemon=True).start()
with open(os.path.join(out_dir, "journal.log"), "ab") as out:
    while True:
        out.writelines(fields(native.recv(1 << 20)))
        out.flush()
EOF
python3 "$work/journald.py" "$work" &
journald=$!
for _ in $(seq 100); do [ -S /run/systemd/journal/stdout ] && break; sleep 0.1; done
[ -S /run/systemd/journal/stdout ] || fail "the stand-in journald did not start"

(
    for cgroup in "${cgroups[@]}"; do echo "$BASHPID" >"$cgroup/cgroup.procs"; done
    exec /lib/systemd/systemd --user --log-target=console
) >"$work/manager.log" 2>&1 &
manager=$!
stop_manager() {
    kill "$manager" 2>/dev/null || true
    wait "$manager" 2>/dev/null || true
    kill "$journald" 2>/dev/null || true
    for cgroup in "${cgroups[@]}"; do
        find "$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
}
trap stop_manager EXIT
for _ in $(seq 100); do
    state=$(systemctl --user is-system-running 2>/dev/null || true)
    [ "$state" = running ] || [ "$state" = degraded ] && break
    sleep 0.1
done
[ "$state" = running ] || fail "the user manager is $state"

prop() { systemctl --user show -P "$1" mcp-gateway.service; }
wait_inactive() {
    for _ in $(seq 150); do
        [ "$(prop ActiveState)" = inactive ] && return
        sleep 0.1
    done
    fail "mcp-gateway.service is still $(prop ActiveState)"
}

systemctl --user enable --now mcp-gateway.socket
[ "$(prop ActiveState)" = inactive ] || fail "the daemon started before any connection"
mcpctl status
[ "$(prop ActiveState)" = active ] || fail "a connection did not start the daemon"
status=$(prop StatusText)
[[ "$status" == accepting* || "$status" == ready* ]] || fail "status text: $status"
[ "$(prop WatchdogUSec)" = 30s ] || fail "the watchdog is $(prop WatchdogUSec)"
[ "$(prop NoNewPrivileges)" = yes ] || fail "the unit's hardening is not in force"
first=$(prop MainPID)
echo "activated: pid $first, status \"$status\""
# The stand-in reads its socket on its own time: give it a moment.
for _ in $(seq 50); do
    grep -q "^MESSAGE=listening on $XDG_RUNTIME_DIR/mcp-gateway.sock$" "$work/journal.log" && break
    sleep 0.1
done
grep -q "^MESSAGE=listening on $XDG_RUNTIME_DIR/mcp-gateway.sock$" "$work/journal.log" &&
    grep -q '^SYSLOG_IDENTIFIER=mcp-gatewayd$' "$work/journal.log" ||
    fail "the daemon did not log to the journal: $(cat "$work/journal.log")"
! grep -q "listening on" "$work/journal-stream.log" ||
    fail "the daemon wrote plain lines to a stderr that is the journal stream"
echo "logs reach the journal as native entries, not as plain lines"

initialize='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"check","version":"0"}}}'
answer=$(echo "$initialize" | timeout 10 mcp-shim --client check-units)
[[ "$answer" == *'"serverInfo":{"name":"mcp-gateway"'* ]] || fail "mcp-shim got: $answer"
echo "mcp-shim session initialised"

systemctl --user stop mcp-gateway.service
[ "$(prop Result)" = success ] || fail "stopping gave $(prop Result)"
mcpctl status >/dev/null
second=$(prop MainPID)
[ "$(prop ActiveState)" = active ] && [ "$second" != "$first" ] ||
    fail "the next connection did not start the daemon again"
echo "stopped cleanly; the next connection started pid $second"

dropin="$HOME/.config/systemd/user/mcp-gateway.service.d"
mkdir -p "$dropin"
printf '[Service]\nExecStart=\nExecStart=/usr/bin/mcp-gatewayd --idle-timeout 1\n' >"$dropin/idle.conf"
systemctl --user daemon-reload
systemctl --user stop mcp-gateway.service
mcpctl status >/dev/null
idle=$(prop MainPID)
wait_inactive
[ "$(prop Result)" = success ] || fail "the idle exit gave $(prop Result)"
mcpctl status >/dev/null
[ "$(prop ActiveState)" = active ] && [ "$(prop MainPID)" != "$idle" ] ||
    fail "after the idle exit the next connection did not start the daemon"
echo "pid $idle exited when idle; the next connection started pid $(prop MainPID)"

systemctl --user disable --now mcp-gateway.socket mcp-gateway.service
