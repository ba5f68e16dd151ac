//! The HTTP face and the idle exit: while the face is enabled a socket-activated daemon stays up,
//! since systemd would start it again for a Unix-socket client but nothing does for an HTTP one;
//! once the face is disabled it idles out as usual.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::{HELLO, activated, wait_for_socket};

/// Sends `request` on a control connection; returns the response line.
fn control(dir: &std::path::Path, request: &str) -> String {
    let mut stream = UnixStream::connect(dir.join("gw.sock")).unwrap();
    stream
        .write_all(format!("{HELLO}{request}\n").as_bytes())
        .unwrap();
    let mut lines = BufReader::new(stream).lines();
    let hello = lines.next().unwrap().unwrap();
    assert!(hello.contains("\"type\":\"hello\""), "{hello}");
    lines.next().unwrap().unwrap()
}

#[test]
fn an_enabled_http_face_keeps_a_socket_activated_daemon_from_idling_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config/mcp-gateway");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        "[http]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut activator = activated(dir.path(), &[]).spawn().unwrap();
    wait_for_socket(dir.path());
    let status = control(dir.path(), "{\"type\":\"http_status\"}");
    assert!(status.contains("\"url\":\"http://127.0.0.1:"), "{status}");

    std::thread::sleep(Duration::from_secs(3));
    assert!(
        activator.try_wait().unwrap().is_none(),
        "the daemon idled out with its HTTP face enabled"
    );

    let disabled = control(dir.path(), "{\"type\":\"http_disable\"}");
    assert!(disabled.contains("\"enabled\":false"), "{disabled}");
    let start = Instant::now();
    let exit = loop {
        if let Some(status) = activator.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the daemon did not idle out after the face was disabled"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit}");
}
