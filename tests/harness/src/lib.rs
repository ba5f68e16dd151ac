//! The end-to-end harness: starts the real binaries against a real container engine, each test in
//! its own temporary XDG directories, and cleans up after itself.
//!
//! Docker-backed tests call [`require_docker`]. It honours `MCP_TEST_DOCKER`: `require` (the
//! default, and what CI sets) fails loudly when no engine answers; `off` skips with a printed
//! notice. There is no silent skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

mod procs;
mod raw;
mod registry;
pub use procs::children;
pub use raw::{ANSWER_TIMEOUT, RawClient};
pub use registry::{Registry, build_named, build_unique, docker_cli, image_present};

/// The fixture image the tests run, unless `MCP_TEST_FIXTURE_IMAGE` names another (a developer
/// testing a changed fixture on an engine others share); `tests/run.sh` builds it, and
/// [`fixture_image`] builds it if it is missing.
pub const FIXTURE_IMAGE: &str = "mcp-gateway-fixture:test";

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The workspace binary `name` from `target/PROFILE`, next to this test binary (or from
/// `MCP_GATEWAY_BIN_DIR`); fails the test when it is missing.
pub fn bin(name: &str) -> PathBuf {
    find_bin(name).unwrap_or_else(|message| panic!("{message}"))
}

/// Where [`bin`] looks for `name`, or why it is not there.
pub fn find_bin(name: &str) -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("MCP_GATEWAY_BIN_DIR") {
        return Ok(PathBuf::from(dir).join(name));
    }
    let exe = std::env::current_exe().map_err(|err| format!("cannot find this binary: {err}"))?;
    // A test binary sits in `target/PROFILE/deps`, a workspace binary (the benchmark) in
    // `target/PROFILE` itself, beside the binaries it runs.
    let dir = exe
        .parent()
        .and_then(|dir| {
            if dir.ends_with("deps") {
                dir.parent()
            } else {
                Some(dir)
            }
        })
        .ok_or_else(|| format!("no target directory above {}", exe.display()))?;
    let path = dir.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing; run `cargo build --workspace` first",
            path.display()
        ))
    }
}

/// The statically linked launcher every daemon of the tests is given (`MCP_GATEWAY_LAUNCHER`, else
/// what `launcher/build-static.sh` builds, which `tests/run.sh` runs). A daemon given none that
/// exists puts servers' stdio on the attach stream, which `tests/it/stdio.rs` then fails on.
pub fn static_launcher() -> PathBuf {
    if let Some(launcher) = std::env::var_os("MCP_GATEWAY_LAUNCHER").filter(|l| !l.is_empty()) {
        return launcher.into();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace().join("target"), PathBuf::from)
        .join("static/mcp-launcher")
}

/// True when Docker tests should run; panics when they must run and cannot.
pub fn require_docker() -> bool {
    match std::env::var("MCP_TEST_DOCKER").as_deref() {
        Ok("off") => {
            eprintln!("SKIP (MCP_TEST_DOCKER=off): this test needs a container engine");
            false
        }
        Ok("require") | Err(_) => {
            assert!(
                engine_answers(),
                "no container engine answers `docker version`; start dockerd or set MCP_TEST_DOCKER=off"
            );
            true
        }
        Ok(other) => panic!("MCP_TEST_DOCKER={other:?}: use require or off"),
    }
}

/// Whether a container engine answers `docker version`.
pub fn engine_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes sure the fixture image exists, building it once per test run if needed.
pub fn fixture_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let image = std::env::var("MCP_TEST_FIXTURE_IMAGE")
            .ok()
            .filter(|image| !image.is_empty())
            .unwrap_or_else(|| FIXTURE_IMAGE.to_owned());
        ensure_fixture_image(&image);
        image
    })
}

/// Builds the fixture as image `tag` with `tests/fixture/build-image.sh` unless it exists.
pub fn ensure_fixture_image(tag: &str) {
    let present = Command::new("docker")
        .args(["image", "inspect", tag])
        .output();
    if present.is_ok_and(|o| o.status.success()) {
        return;
    }
    let status = Command::new("bash")
        .arg(workspace().join("tests/fixture/build-image.sh"))
        .arg(tag)
        .current_dir(workspace())
        .status()
        .expect("run build-image.sh");
    assert!(status.success(), "building {tag} failed");
}

/// Whether a Unix socket bound at `path` listens, by `/proc/net/unix` (whose `Flags` column is
/// `00010000`, `__SO_ACCEPTCON`, for a listening socket).
fn listening(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let path = path.to_string_lossy();
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(3) == Some(&"00010000") && fields.get(7) == Some(&path.as_ref())
    })
}

/// Which file is at `path`, if any: its inode and change time, since a file created just after
/// another was removed may be given the same inode.
fn socket_file(path: &Path) -> Option<(u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|meta| (meta.ino(), meta.ctime(), meta.ctime_nsec()))
}

/// How the daemon is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Through `systemd-socket-activate`, which passes the socket as fd 3 like systemd does.
    SocketActivated,
    /// With `--socket PATH`.
    Bound,
}

/// A daemon in its own temporary XDG directories.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: Option<Child>,
    extra_env: Vec<(String, String)>,
    /// Whether the daemon's stderr goes to [`Daemon::log_path`] instead of the test's stderr.
    capture_stderr: bool,
}

impl Daemon {
    pub fn start(how: Start) -> Daemon {
        Daemon::start_with_env(how, &[])
    }

    pub fn start_with_env(how: Start, env: &[(&str, &str)]) -> Daemon {
        Daemon::launch(how, env, false)
    }

    /// Like [`Daemon::start_with_env`], with the daemon's stderr kept in a file for
    /// [`Daemon::log`], so a test can check what it logged.
    pub fn start_capturing_stderr(how: Start, env: &[(&str, &str)]) -> Daemon {
        Daemon::launch(how, env, true)
    }

    fn launch(how: Start, env: &[(&str, &str)], capture_stderr: bool) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("mcp-gw-test-")
            .tempdir()
            .expect("temp dir");
        for sub in ["run", "config", "state", "home"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("xdg dirs");
        }
        let socket = dir.path().join("run/mcp-gateway.sock");
        let mut daemon = Daemon {
            dir,
            socket,
            child: None,
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            capture_stderr,
        };
        daemon.relaunch(how);
        daemon
    }

    /// Starts the daemon (again, after [`Daemon::kill`] or [`Daemon::stop`]) on the same
    /// directories.
    pub fn relaunch(&mut self, how: Start) {
        assert!(self.child.is_none(), "the daemon is still running");
        let daemon = self;
        let mut command = match how {
            Start::SocketActivated => {
                let mut command = Command::new("systemd-socket-activate");
                command.arg("--listen").arg(&daemon.socket);
                for (key, _) in daemon.env() {
                    command.arg(format!("--setenv={key}"));
                }
                command.arg(bin("mcp-gatewayd"));
                command
            }
            Start::Bound => {
                let mut command = Command::new(bin("mcp-gatewayd"));
                command.arg("--socket").arg(&daemon.socket);
                command
            }
        };
        command
            .envs(daemon.env())
            .env_remove(mcp_gateway_proto::SOCKET_ENV)
            .stdin(Stdio::null());
        if daemon.capture_stderr {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(daemon.log_path())
                .expect("the daemon's log file");
            command.stderr(log);
        }
        // A socket file left by an earlier run would satisfy the wait below before
        // systemd-socket-activate binds its own (it replaces the file), and an early client would
        // be refused. A bound daemon's own handling of a stale socket is left for it to show.
        if how == Start::SocketActivated {
            let _ = std::fs::remove_file(&daemon.socket);
        }
        // A bound daemon replaces a stale socket file (one a killed daemon left) with its own,
        // so the wait is for a file other than the one there before, which the dead daemon
        // would refuse connections on.
        let stale = socket_file(&daemon.socket);
        daemon.child = Some(command.spawn().expect("start the daemon"));
        wait_for(Duration::from_secs(10), || {
            socket_file(&daemon.socket).is_some_and(|file| Some(file) != stale)
        });
        // A socket's file exists from its `bind`, a moment before its `listen`: a client in
        // between is refused. For a bound daemon a connection closed before its hello costs
        // nothing; under systemd-socket-activate a connection would start the daemon, which
        // activation tests must do themselves, so there the kernel's table of sockets says when
        // it listens.
        match how {
            Start::Bound => wait_for(Duration::from_secs(10), || {
                std::os::unix::net::UnixStream::connect(&daemon.socket).is_ok()
            }),
            Start::SocketActivated => {
                wait_for(Duration::from_secs(10), || listening(&daemon.socket))
            }
        }
    }

    /// Where a daemon started with [`Daemon::start_capturing_stderr`] writes its stderr, across
    /// relaunches.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// What the daemon wrote to stderr so far (with [`Daemon::start_capturing_stderr`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The daemon's process id while it runs. Under `systemd-socket-activate` it is the same
    /// process, which execs the daemon on the first connection.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The environment every process of this test gets: private XDG directories and socket.
    pub fn env(&self) -> Vec<(String, String)> {
        let path = |sub: &str| self.dir.path().join(sub).display().to_string();
        let mut env = vec![
            ("XDG_RUNTIME_DIR".into(), path("run")),
            ("XDG_CONFIG_HOME".into(), path("config")),
            ("XDG_STATE_HOME".into(), path("state")),
            ("HOME".into(), path("home")),
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            (
                "RUST_LOG".into(),
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            ),
        ];
        if let Ok(host) = std::env::var("DOCKER_HOST") {
            env.push(("DOCKER_HOST".into(), host));
        }
        env.push((
            "MCP_GATEWAY_LAUNCHER".into(),
            static_launcher().display().to_string(),
        ));
        env.extend(self.extra_env.iter().cloned());
        env
    }

    /// Runs `mcpctl ARGS` against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("mcpctl"))
            .args(args)
            .envs(self.env())
            .output()
            .expect("run mcpctl")
    }

    /// Runs `mcpctl ARGS` with `input` as its standard input.
    pub fn ctl_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = Command::new(bin("mcpctl"))
            .args(args)
            .envs(self.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run mcpctl");
        let mut stdin = child.stdin.take().expect("mcpctl's stdin");
        // mcpctl may refuse before reading (a bad name); a closed pipe is its answer, not ours.
        let _ = stdin.write_all(input);
        drop(stdin);
        child.wait_with_output().expect("wait for mcpctl")
    }

    /// Runs `mcpctl ARGS` and returns its stdout, failing the test if it fails.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let output = self.ctl(args);
        assert!(
            output.status.success(),
            "mcpctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Runs `mcpctl --json ARGS` and parses its output, failing the test if it fails.
    pub fn ctl_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ctl_ok(&all)).expect("mcpctl --json prints JSON")
    }

    /// The MCP sessions `mcpctl status` counts now.
    pub fn sessions(&self) -> u64 {
        let status = self.ctl_json(&["status"]);
        status["sessions"]
            .as_u64()
            .unwrap_or_else(|| panic!("no session count in {status}"))
    }

    /// `mcpctl --json server ls`'s entry for `server`.
    pub fn server_entry(&self, server: &str) -> Value {
        let servers = self.ctl_json(&["server", "ls"]);
        servers["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == server)
            .unwrap_or_else(|| panic!("{server} missing from {servers}"))
            .clone()
    }

    /// Adds the fixture image as server `name`, identifying itself as `name`.
    pub fn add_fixture(&self, name: &str) {
        self.add_fixture_with_env(name, &[]);
    }

    /// Adds the fixture as server `name` with more `KEY=VALUE` environment for it.
    pub fn add_fixture_with_env(&self, name: &str, env: &[&str]) {
        let identity = format!("MCP_FIXTURE_NAME={name}");
        let mut args = vec!["server", "add", name, "--image", fixture_image()];
        for pair in std::iter::once(identity.as_str()).chain(env.iter().copied()) {
            args.extend(["--env", pair]);
        }
        self.ctl_ok(&args);
    }

    /// Starts `mcp-shim SHIM_ARGS` on pipes, as an AI client does.
    pub fn shim(&self, shim_args: &[&str]) -> Child {
        Command::new(bin("mcp-shim"))
            .args(shim_args)
            .envs(self.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start mcp-shim")
    }

    /// Starts a raw JSON-lines client over `mcp-shim SHIM_ARGS`.
    pub fn raw_client(&self, shim_args: &[&str]) -> RawClient {
        RawClient::start(self, shim_args)
    }

    /// Starts the Python SDK test client over `mcp-shim SHIM_ARGS` with the given steps.
    pub fn python_client(&self, steps: &Value, shim_args: &[&str]) -> Child {
        self.python_client_with(steps, &[], shim_args)
    }

    /// [`Daemon::python_client`] with options for `tests/py/mcp_client.py` (`--callbacks
    /// sampling,elicitation,roots`, `--mode 2026-07-28`).
    pub fn python_client_with(&self, steps: &Value, options: &[&str], shim_args: &[&str]) -> Child {
        Command::new("python3")
            .arg(workspace().join("tests/py/mcp_client.py"))
            .arg("--steps")
            .arg(steps.to_string())
            .args(options)
            .arg("--")
            .arg(bin("mcp-shim"))
            .args(shim_args)
            .envs(self.env())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3 tests/py/mcp_client.py")
    }

    /// Runs the Python client to the end and returns its JSON report.
    pub fn python_run(&self, steps: &Value, shim_args: &[&str]) -> Value {
        client_report(self.python_client(steps, shim_args))
    }

    /// [`Daemon::python_run`] with client options, as [`Daemon::python_client_with`].
    pub fn python_run_with(&self, steps: &Value, options: &[&str], shim_args: &[&str]) -> Value {
        client_report(self.python_client_with(steps, options, shim_args))
    }

    /// Runs the Python client against the HTTP face at `url` with `token`, instead of over
    /// `mcp-shim`, and returns its JSON report.
    pub fn python_http_run(
        &self,
        steps: &Value,
        options: &[&str],
        url: &str,
        token: &str,
    ) -> Value {
        let child = Command::new("python3")
            .arg(workspace().join("tests/py/mcp_client.py"))
            .arg("--steps")
            .arg(steps.to_string())
            .args(options)
            .args(["--url", url])
            .envs(self.env())
            .env("MCP_HTTP_TOKEN", token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3 tests/py/mcp_client.py");
        client_report(child)
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        child.wait().is_ok_and(|status| status.success())
    }

    /// SIGKILLs the daemon, as a crash or the OOM killer would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// This daemon's containers (running or not), by its scope label.
    pub fn containers(&self) -> Vec<String> {
        containers_with_label(&format!("io.mcp-gateway.scope={}", self.socket.display()))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        for id in self.containers() {
            let _ = Command::new("docker").args(["rm", "-f", &id]).output();
        }
    }
}

/// Waits for a Python client and parses its report, failing with its stderr if it failed.
pub fn client_report(child: Child) -> Value {
    let output = child
        .wait_with_output()
        .expect("wait for the python client");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "python client failed: {stderr}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("bad report ({err}); stderr: {stderr}"))
}

/// Ids of all containers (running or not) carrying `label` (`key=value`).
pub fn containers_with_label(label: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label={label}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Polls `condition` until it holds, failing the test after `limit`.
pub fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The text of a CallToolResult's first content block.
/// What the fixture's `getenv` answers for `value`: its FNV-1a (64-bit) fingerprint in hex.
pub fn fingerprint(value: &str) -> String {
    let hash = value.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

pub fn first_text(result: &Value) -> &str {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {result}"))
}
