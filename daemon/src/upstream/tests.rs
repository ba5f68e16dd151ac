//! The upstream connection against an in-process fake server speaking over pipes. The fake lets a
//! test decide answer order and crash timing, which a real server cannot be made to do on demand.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::*;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Starts an upstream whose server is `serve`, a closure over the server's side of the pipes.
fn with_server<F, Fut>(serve: F) -> Arc<Upstream>
where
    F: FnOnce(BufReader<tokio::io::DuplexStream>, tokio::io::DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (gateway_in, server_out) = tokio::io::duplex(1 << 16);
    let (server_in, gateway_out) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve(BufReader::new(server_in), server_out));
    Upstream::spawn(
        "fake",
        gateway_out,
        gateway_in,
        Arc::new(LogTail::new("fake")),
        1 << 20,
    )
}

fn id_of(line: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn concurrent_requests_get_their_own_answers_even_out_of_order() {
    let upstream = with_server(|mut input, mut output| async move {
        let mut first = String::new();
        let mut second = String::new();
        input.read_line(&mut first).await.unwrap();
        input.read_line(&mut second).await.unwrap();
        // Answer the second request first, echoing each id in its result.
        for line in [&second, &first] {
            let id = id_of(line);
            let answer = format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"was\":{id},\"extra\":[1.50]}}}}\n"
            );
            output.write_all(answer.as_bytes()).await.unwrap();
        }
        std::future::pending::<()>().await;
    });
    let (a, b) = tokio::join!(
        upstream.request("a", None, TIMEOUT),
        upstream.request("b", None, TIMEOUT)
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_ne!(a.get(), b.get());
    assert!(
        a.get().contains("\"extra\":[1.50]"),
        "raw result kept: {}",
        a.get()
    );
}

#[tokio::test]
async fn a_server_that_dies_fails_waiting_requests_at_once_with_its_stderr() {
    let stderr = Arc::new(LogTail::new("fake"));
    stderr.push(b"panic: out of cheese\n");
    let (gateway_in, server_out) = tokio::io::duplex(1024);
    let (server_in, gateway_out) = tokio::io::duplex(1024);
    let upstream = Upstream::spawn("fake", gateway_out, gateway_in, stderr, 1024);
    tokio::spawn(async move {
        let mut input = BufReader::new(server_in);
        let mut line = String::new();
        input.read_line(&mut line).await.unwrap();
        drop(server_out);
    });
    let started = std::time::Instant::now();
    let err = upstream
        .request("tools/call", None, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(&err, UpstreamError::Closed { .. }), "{err}");
    assert!(err.to_string().contains("out of cheese"), "{err}");
    assert!(upstream.is_closed());
    assert!(matches!(
        upstream.request("again", None, TIMEOUT).await,
        Err(UpstreamError::Closed { .. })
    ));
}

#[tokio::test]
async fn a_silent_server_times_out_and_is_told_to_cancel() {
    let (cancel_tx, cancel_rx) = oneshot::channel();
    let upstream = with_server(|mut input, output| async move {
        // Holding the output open keeps the server alive but silent.
        let _output = output;
        let mut request = String::new();
        input.read_line(&mut request).await.unwrap();
        let mut cancel = String::new();
        input.read_line(&mut cancel).await.unwrap();
        let _ = cancel_tx.send((request, cancel));
        std::future::pending::<()>().await;
    });
    let err = upstream
        .request("slow", None, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Timeout { .. }), "{err}");
    let (request, cancel) = cancel_rx.await.unwrap();
    let cancel: serde_json::Value = serde_json::from_str(&cancel).unwrap();
    assert_eq!(cancel["method"], "notifications/cancelled");
    assert_eq!(
        cancel["params"]["requestId"].as_u64(),
        Some(id_of(&request))
    );
    assert!(upstream.pending.lock().unwrap().is_empty());
}

#[tokio::test]
async fn server_pings_are_answered_and_junk_is_skipped() {
    let (tx, rx) = oneshot::channel();
    let _upstream = with_server(|mut input, mut output| async move {
        output
            .write_all(b"not json\n{\"jsonrpc\":\"2.0\",\"id\":\"p1\",\"method\":\"ping\"}\n")
            .await
            .unwrap();
        let mut answer = String::new();
        input.read_line(&mut answer).await.unwrap();
        let _ = tx.send(answer);
    });
    let answer: serde_json::Value = serde_json::from_str(&rx.await.unwrap()).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"jsonrpc": "2.0", "id": "p1", "result": {}})
    );
}
