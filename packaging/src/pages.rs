//! Man page sections that no clap definition holds: how the daemon is started, the files and
//! variables it reads, `mcpctl`'s exit statuses (the README's table), and cross references.
//! Plain roff, appended to the pages clap_mangen renders.

/// Appended to `mcp-gatewayd(1)`.
pub const DAEMON: &str = r#".SH "SOCKET ACTIVATION"
The package installs the user units
.B mcp-gateway.socket
and
.BR mcp-gateway.service .
Enable the socket once per user:
.PP
.RS
.B systemctl \-\-user enable \-\-now mcp-gateway.socket
.RE
.PP
systemd then listens on
.I $XDG_RUNTIME_DIR/mcp-gateway.sock
(mode 0600) and starts the daemon on the first connection, passing the socket as file
descriptor 3
.RB ( LISTEN_FDS ,
.BR LISTEN_PID ).
The daemon tells systemd when it accepts connections, reports its state in words
.RB ( "systemctl \-\-user status mcp-gateway" ),
pings the watchdog when the unit sets
.BR WatchdogSec= ,
and on SIGTERM stops accepting, ends its sessions, removes its containers and exits 0.
.PP
When socket-activated, it also exits after
.B \-\-idle\-timeout
seconds without any connection. A connection that arrives meanwhile waits in the socket's queue and
is served by the next start; none is refused. A daemon that bound its own socket
.RB ( \-\-socket )
never exits on idle, since nothing would start it again.
.SH ENVIRONMENT
.TP
.B DOCKER_HOST
The container engine to use. Unset, the daemon tries the default Docker socket, then Podman's
user socket.
.TP
.B RUST_LOG
Log filter (default
.BR info ),
for example
.BR mcp_gatewayd=debug .
.TP
.B JOURNAL_STREAM
When it names the daemon's standard error, logs go to the journal with their levels as
priorities; otherwise they are plain lines on standard error.
.TP
.BR XDG_CONFIG_HOME ", " XDG_STATE_HOME ", " XDG_RUNTIME_DIR
Where configuration, state and the socket live (see
.BR FILES ).
.SH FILES
.TP
.I $XDG_CONFIG_HOME/mcp-gateway/catalog.toml
The MCP servers a user can run (written by
.BR "mcpctl server add" ).
.TP
.I $XDG_CONFIG_HOME/mcp-gateway/profiles.toml
Named sets of servers. Without a
.B default
profile, every server of the catalog is in it.
.TP
.I $XDG_STATE_HOME/mcp-gateway/active-profile
The profile served to clients that name none.
.TP
.I $XDG_RUNTIME_DIR/mcp-gateway.sock
The socket that
.BR mcpctl (1)
and
.BR mcp-shim (1)
connect to.
.TP
.I $XDG_RUNTIME_DIR/mcp-gateway-stdio.PID.*/
The sockets servers' launchers connect to, one per container until it connects; removed when the
daemon exits, or at the next start after a daemon that was killed.
.TP
.I /usr/libexec/mcp-gateway/mcp-launcher
The statically linked entrypoint of every container on a local engine: it connects the server's
stdin and stdout to the daemon (see
.BR \-\-server\-stdio ).
.TP
.IR /usr/lib/systemd/user/mcp-gateway.socket ", " /usr/lib/systemd/user/mcp-gateway.service
The user units.
.SH "SEE ALSO"
.BR mcpctl (1),
.BR mcp-shim (1),
.BR systemd.socket (5),
.BR sd_notify (3),
.BR systemd-socket-activate (1)
"#;

/// Appended to `mcpctl(1)`.
pub const MCPCTL: &str = r#".SH "EXIT STATUS"
.TP
.B 0
Success.
.TP
.B 1
Another failure (a bad argument value, an I/O error);
.BR "mcpctl doctor" :
a check failed.
.TP
.B 2
A usage error.
.TP
.B 3
No such server, profile or tool.
.TP
.B 4
The change would make the configuration invalid,
.B reload
found a broken file, or the change would rewrite a file edited by hand that does not parse.
.TP
.B 5
The container engine failed (for server pull: the image could not be pulled).
.TP
.B 6
An MCP server failed: it did not start, crashed, or answered with an error.
.TP
.B 69
The daemon is unreachable.
.TP
.B 76
The daemon refused the connection or spoke another protocol.
.SH EXAMPLES
.nf
mcpctl server add github \-\-image ghcr.io/example/github\-mcp \-\-env GITHUB_HOST=github.com
mcpctl profile create work \-\-server github \-\-server fetch
mcpctl profile use work
mcpctl tools call search query=rust limit:=5
mcpctl status \-\-json
.fi
.SH "SEE ALSO"
.BR mcp-gatewayd (1),
.BR mcp-shim (1)
"#;
