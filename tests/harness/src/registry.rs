//! A real image registry on loopback for the pull tests: Debian's `docker-registry` (the
//! distribution project's `registry`) serving a temporary directory on `127.0.0.1:PORT`, which
//! Docker treats as an insecure registry it may speak plain HTTP to. Tests push images to it with
//! the docker CLI and remove them locally, so the daemon has to pull them.
//!
//! A registry that cannot start fails the test: the pull tests run whenever Docker tests do
//! (`MCP_TEST_DOCKER=require`), and `.ci/run` installs the package.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Registry {
    /// Starts a registry on a free loopback port and waits until it answers `/v2/`.
    pub fn start() -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("mcp-gw-registry-")
            .tempdir()
            .expect("temp dir");
        // The port is free now; the registry binds it a moment later, so a clash is only
        // possible with a process binding port 0 in between and shows as a start failure.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("registry log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot run docker-registry ({err}); install it: apt-get install docker-registry")
            });
        let mut registry = Registry { child, dir, port };
        let start = Instant::now();
        while !registry.answers() {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited with {status}: {}", registry.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "docker-registry did not answer on 127.0.0.1:{port}: {}",
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let request = format!(
            "GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        let mut answer = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `127.0.0.1:PORT`, the registry's host as image references name it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `localhost:PORT`: the same registry under another name, so an image pushed through it is
    /// a different local image from the one under [`Registry::host`].
    pub fn alias(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// Pushes local image `source` as `reference` (under [`Registry::host`] or
    /// [`Registry::alias`]), removes `reference` from the engine again, and returns the
    /// manifest's digest (`sha256:…`).
    pub fn push(&self, source: &str, reference: &str) -> String {
        docker_cli(&["tag", source, reference]);
        let pushed = docker_cli(&["push", reference]);
        docker_cli(&["rmi", reference]);
        pushed
            .split_whitespace()
            .skip_while(|word| *word != "digest:")
            .nth(1)
            .unwrap_or_else(|| panic!("no digest in the push output: {pushed}"))
            .to_owned()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // What the tests and the daemon left in the engine under this registry's names.
        let listed = Command::new("docker")
            .args([
                "image",
                "ls",
                "--digests",
                "--format",
                "{{.Repository}} {{.Tag}} {{.Digest}}",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let ours = [format!("{}/", self.host()), format!("{}/", self.alias())];
        for line in listed.lines() {
            let mut fields = line.split(' ');
            let (Some(repo), Some(tag), Some(digest)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if !ours.iter().any(|prefix| repo.starts_with(prefix.as_str())) {
                continue;
            }
            if tag != "<none>" {
                let _ = Command::new("docker")
                    .args(["rmi", &format!("{repo}:{tag}")])
                    .output();
            }
            if digest != "<none>" {
                let _ = Command::new("docker")
                    .args(["rmi", &format!("{repo}@{digest}")])
                    .output();
            }
        }
    }
}

/// Runs the docker CLI and returns its stdout, failing the test when it fails.
pub fn docker_cli(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Whether the engine holds an image under `reference`.
pub fn image_present(reference: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", reference])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds an image `tag` from `base` with `MCP_FIXTURE_NAME=name` in its environment (the legacy
/// builder: a `FROM` of a local image needs nothing else), so tests can tell images apart by what
/// the fixture's `whoami` answers.
pub fn build_named(base: &str, name: &str, tag: &str) {
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run docker build");
    let dockerfile = format!("FROM {base}\nENV MCP_FIXTURE_NAME={name}\n");
    child
        .stdin
        .take()
        .expect("docker build's stdin")
        .write_all(dockerfile.as_bytes())
        .expect("write the Dockerfile");
    let output = child.wait_with_output().expect("wait for docker build");
    assert!(
        output.status.success(),
        "docker build failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Builds `tag` from `base`'s files plus `extra_mib` MiB of random data, as one layer no other
/// image shares, so that pulling it moves bytes (and the engine reports download progress) even
/// though `base` is present. The entry point is the fixture's.
pub fn build_unique(base: &str, extra_mib: u64, tag: &str) {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("temp dir");
    let rootfs = dir.path().join("rootfs.tar");
    let container = docker_cli(&["create", base]);
    let container = container.trim();
    docker_cli(&["export", "-o", &rootfs.display().to_string(), container]);
    docker_cli(&["rm", container]);
    let mut random = Vec::new();
    std::fs::File::open("/dev/urandom")
        .and_then(|f| f.take(extra_mib << 20).read_to_end(&mut random))
        .expect("random bytes");
    std::fs::write(dir.path().join("unique"), random).expect("the random file");
    let appended = Command::new("tar")
        .arg("--append")
        .arg("-f")
        .arg(&rootfs)
        .arg("-C")
        .arg(dir.path())
        .arg("unique")
        .status()
        .expect("run tar");
    assert!(appended.success(), "tar --append failed");
    docker_cli(&[
        "import",
        "-c",
        r#"ENTRYPOINT ["/mcp-fixture"]"#,
        &rootfs.display().to_string(),
        tag,
    ]);
}
