//! The daemon on Podman: Debian's `podman` serving its Docker-compatible API on
//! `$XDG_RUNTIME_DIR/podman/podman.sock`, no `DOCKER_HOST`, and the Docker socket masked (a
//! private mount namespace binds `/dev/null` over `/run/docker.sock`), so the daemon has to find
//! Podman by itself.
//!
//! Gated by `MCP_TEST_PODMAN`: `off` (the default: CI does not install Podman, and the namespace
//! needs root) skips with a notice, `require` runs it and fails when Podman cannot serve.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mcp_gateway_tests::{bin, docker_cli, fixture_image, static_launcher, wait_for};

/// True when the Podman test should run.
fn require_podman() -> bool {
    match std::env::var("MCP_TEST_PODMAN").as_deref() {
        Ok("off") | Err(_) => {
            eprintln!(
                "SKIP (MCP_TEST_PODMAN=off): set MCP_TEST_PODMAN=require to run against Podman"
            );
            false
        }
        Ok("require") => true,
        Ok(other) => panic!("MCP_TEST_PODMAN={other:?}: use require or off"),
    }
}

/// Kills a child (the Podman service, the daemon) when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

#[test]
fn the_daemon_finds_podmans_socket_when_no_docker_socket_answers() {
    if !require_podman() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |sub: &str| dir.path().join(sub).display().to_string();
    for sub in ["run/podman", "config", "state", "home"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let podman_socket = path("run/podman/podman.sock");
    let service = Reaped(
        Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{podman_socket}"))
            .stdin(Stdio::null())
            .spawn()
            .expect("run podman (apt-get install podman catatonit)"),
    );
    wait_for(Duration::from_secs(20), || {
        std::path::Path::new(&podman_socket).exists()
    });
    // Podman has its own image store: the fixture goes over as an archive.
    let archive = path("fixture.tar");
    docker_cli(&["save", "-o", &archive, fixture_image()]);
    let loaded = Command::new("podman")
        .args(["load", "-q", "-i", &archive])
        .output()
        .expect("podman load");
    assert!(loaded.status.success(), "{loaded:?}");
    // `podman load` keeps the name, with Podman's `localhost/` for names without a registry.
    let image = format!("localhost/{}", fixture_image());

    let env = [
        ("XDG_RUNTIME_DIR", path("run")),
        ("XDG_CONFIG_HOME", path("config")),
        ("XDG_STATE_HOME", path("state")),
        ("HOME", path("home")),
        (
            "MCP_GATEWAY_LAUNCHER",
            static_launcher().display().to_string(),
        ),
    ];
    let socket = path("gw.sock");
    let daemon = Reaped(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind /dev/null /run/docker.sock && exec "$@""#)
            .arg("sh")
            .arg(bin("mcp-gatewayd"))
            .arg("--socket")
            .arg(&socket)
            .envs(env.iter().cloned())
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .spawn()
            .expect("run the daemon in a mount namespace of its own (needs root)"),
    );
    wait_for(Duration::from_secs(10), || {
        std::path::Path::new(&socket).exists()
    });
    let ctl = |args: &[&str]| {
        let output = Command::new(bin("mcpctl"))
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .envs(env.iter().cloned())
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap();
        assert!(output.status.success(), "mcpctl {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let status = ctl(&["status"]);
    assert!(
        status.contains("engine:          Podman Engine "),
        "{status}"
    );
    ctl(&[
        "server",
        "add",
        "alpha",
        "--image",
        &image,
        "--env",
        "MCP_FIXTURE_NAME=alpha",
    ]);
    assert_eq!(ctl(&["tools", "call", "whoami"]).trim(), "alpha");
    assert_eq!(
        ctl(&["tools", "call", "echo", "text=on podman"]).trim(),
        "on podman"
    );
    let containers = || {
        let output = Command::new("podman")
            .args(["ps", "-aq", "--filter", "label=io.mcp-gateway.managed=true"])
            .args(["--filter", &format!("label=io.mcp-gateway.scope={socket}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).lines().count()
    };
    assert_eq!(containers(), 1);
    // Podman's containers get the launcher as Docker's do: stdio over the daemon's socket.
    let id = Command::new("podman")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.mcp-gateway.scope={socket}"),
        ])
        .output()
        .unwrap();
    let inspected = Command::new("podman")
        .args(["inspect", "--format", "{{.Path}} {{.Args}}"])
        .arg(String::from_utf8_lossy(&id.stdout).trim())
        .output()
        .unwrap();
    let entrypoint = String::from_utf8_lossy(&inspected.stdout);
    // Podman names its init process first (Docker's stays out of `Path`).
    assert!(
        entrypoint.contains("/.mcp-gateway/launcher /.mcp-gateway/stdio.sock /mcp-fixture]"),
        "{entrypoint}"
    );
    drop(daemon);
    wait_for(Duration::from_secs(20), || containers() == 0);
    let _ = Command::new("podman").args(["rmi", &image]).output();
    drop(service);
}
