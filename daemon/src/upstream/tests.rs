//! The upstream connection against an in-process fake server speaking over pipes. The fake lets a
//! test decide answer order and crash timing, which a real server cannot be made to do on demand.

use std::time::Duration;

use futures_util::FutureExt;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::*;
use crate::outbox::Outbox;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Starts an upstream whose server is `serve`, a closure over the server's side of the pipes.
fn with_server<F, Fut>(serve: F) -> Arc<Upstream>
where
    F: FnOnce(BufReader<tokio::io::DuplexStream>, tokio::io::DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    with_server_events(serve).0
}

/// [`with_server`], and the events the upstream hands the gateway.
fn with_server_events<F, Fut>(serve: F) -> (Arc<Upstream>, mpsc::Receiver<ServerEvent>)
where
    F: FnOnce(BufReader<tokio::io::DuplexStream>, tokio::io::DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (gateway_in, server_out) = tokio::io::duplex(1 << 16);
    let (server_in, gateway_out) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve(BufReader::new(server_in), server_out));
    spawn_fake(
        gateway_out,
        gateway_in,
        Arc::new(LogTail::new("fake")),
        1 << 20,
    )
}

/// Writes one JSON message as the server.
async fn send_json(out: &mut tokio::io::DuplexStream, message: &serde_json::Value) {
    out.write_all(format!("{message}\n").as_bytes())
        .await
        .unwrap();
}

/// An upstream over the given pipes, and the events it hands the gateway.
fn spawn_fake(
    stdin: tokio::io::DuplexStream,
    stdout: tokio::io::DuplexStream,
    stderr: Arc<LogTail>,
    max_line: usize,
) -> (Arc<Upstream>, mpsc::Receiver<ServerEvent>) {
    let (events, receiver) = mpsc::channel(16);
    let upstream = Upstream::spawn(
        "fake",
        ("p", None),
        (stdin, stdout),
        stderr,
        max_line,
        events,
    );
    (upstream, receiver)
}

fn caller(timeout: Duration) -> Caller {
    Caller::gateway(timeout)
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
    let (first, second) = (caller(TIMEOUT), caller(TIMEOUT));
    let (a, b) = tokio::join!(
        upstream.request("a", None, &first),
        upstream.request("b", None, &second)
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
    let (upstream, _events) = spawn_fake(gateway_out, gateway_in, stderr, 1024);
    tokio::spawn(async move {
        let mut input = BufReader::new(server_in);
        let mut line = String::new();
        input.read_line(&mut line).await.unwrap();
        drop(server_out);
    });
    let started = std::time::Instant::now();
    let err = upstream
        .request("tools/call", None, &caller(Duration::from_secs(30)))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(&err, UpstreamError::Closed { .. }), "{err}");
    assert!(err.to_string().contains("out of cheese"), "{err}");
    assert!(upstream.is_closed());
    assert!(matches!(
        upstream.request("again", None, &caller(TIMEOUT)).await,
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
        .request("slow", None, &caller(Duration::from_millis(50)))
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

/// What a client receives, line by line.
type Received = tokio::io::Lines<BufReader<tokio::io::DuplexStream>>;

/// A connected, initialized client as the gateway sees it, and what it receives.
fn client(id: u64) -> (Arc<Downstream>, Received) {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let (out, write_queued) = Outbox::new(ours, crate::downstream::MAX_QUEUED);
    tokio::spawn(write_queued);
    let client = Arc::new(Downstream::new(id, None, format!("client-{id}"), out));
    client.initialize(Some(&json!({"capabilities": {"sampling": {}}})));
    (client, BufReader::new(theirs).lines())
}

fn owned_by(client: &Arc<Downstream>) -> Caller {
    Caller {
        owner: Some(Arc::clone(client)),
        ..Caller::gateway(TIMEOUT)
    }
}

async fn next_json(lines: &mut Received) -> serde_json::Value {
    let line = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    serde_json::from_str(&line).unwrap()
}

#[tokio::test]
async fn progress_reaches_each_client_under_its_own_token() {
    let upstream = with_server(|mut input, mut output| async move {
        let mut ids = Vec::new();
        for _ in 0..2 {
            let mut line = String::new();
            input.read_line(&mut line).await.unwrap();
            let request: serde_json::Value = serde_json::from_str(&line).unwrap();
            // The server sees the gateway's id as token, never the client's.
            assert_eq!(request["params"]["_meta"]["progressToken"], request["id"]);
            assert_eq!(request["params"]["_meta"]["other"], "kept");
            ids.push(request["id"].as_u64().unwrap());
        }
        for id in &ids {
            let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": id, "progress": id, "total": 9}});
            send_json(&mut output, &progress).await;
        }
        for id in ids {
            let answer = json!({"jsonrpc": "2.0", "id": id, "result": {}});
            send_json(&mut output, &answer).await;
        }
        std::future::pending::<()>().await;
    });
    let (one, mut one_lines) = client(1);
    let (two, mut two_lines) = client(2);
    let params =
        jsonrpc::to_raw(&json!({"name": "x", "_meta": {"progressToken": "same", "other": "kept"}}));
    let (call_one, call_two) = (owned_by(&one), owned_by(&two));
    let (a, b) = tokio::join!(
        upstream.request("tools/call", Some(&params), &call_one),
        upstream.request("tools/call", Some(&params), &call_two)
    );
    assert!(a.unwrap().is_ok() && b.unwrap().is_ok());
    for lines in [&mut one_lines, &mut two_lines] {
        let progress = next_json(lines).await;
        assert_eq!(progress["method"], "notifications/progress");
        assert_eq!(progress["params"]["progressToken"], "same");
        assert_eq!(progress["params"]["total"], 9);
    }
    // Lines for a client that keeps up are written as they are sent: none is on its way.
    let nothing_more = |lines: &mut Received| lines.next_line().now_or_never().is_none();
    assert!(nothing_more(&mut one_lines) && nothing_more(&mut two_lines));
}

#[tokio::test]
async fn a_cancelled_call_tells_the_server_and_ends_at_once() {
    let (tx, rx) = oneshot::channel();
    let upstream = with_server(|mut input, output| async move {
        let _output = output;
        let (mut request, mut cancel) = (String::new(), String::new());
        input.read_line(&mut request).await.unwrap();
        input.read_line(&mut cancel).await.unwrap();
        let _ = tx.send((request, cancel));
        std::future::pending::<()>().await;
    });
    let (one, _lines) = client(1);
    let call = owned_by(&one);
    let cancel = call.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        cancel.cancel();
    });
    let err = upstream
        .request("tools/call", None, &call)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Cancelled), "{err}");
    let (request, cancel) = rx.await.unwrap();
    let cancel: serde_json::Value = serde_json::from_str(&cancel).unwrap();
    assert_eq!(cancel["method"], "notifications/cancelled");
    assert_eq!(
        cancel["params"]["requestId"].as_u64(),
        Some(id_of(&request))
    );
    assert_eq!(cancel["params"]["reason"], "cancelled by the client");
}

#[tokio::test]
async fn an_oversized_answer_fails_its_request_at_once() {
    let upstream = with_server(|mut input, mut output| async move {
        let mut line = String::new();
        input.read_line(&mut line).await.unwrap();
        let id = id_of(&line);
        let huge = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"x\":\"{}\"}}}}\n",
            "y".repeat(4 << 20)
        );
        output.write_all(huge.as_bytes()).await.unwrap();
        std::future::pending::<()>().await;
    });
    let reply = upstream
        .request("tools/call", None, &caller(Duration::from_secs(60)))
        .await
        .unwrap();
    let error = reply.unwrap_err();
    assert!(error.get().contains("too long"), "{}", error.get());
    assert!(!upstream.is_closed());
}

#[tokio::test]
async fn server_requests_name_the_clients_in_flight_and_their_answers_return() {
    let (answered_tx, answered_rx) = oneshot::channel();
    let (upstream, mut events) = with_server_events(|mut input, mut output| async move {
        let mut call = String::new();
        input.read_line(&mut call).await.unwrap();
        let ask = json!({"jsonrpc": "2.0", "id": "s-1", "method": "sampling/createMessage", "params": {"maxTokens": 5}});
        send_json(&mut output, &ask).await;
        let mut answer = String::new();
        input.read_line(&mut answer).await.unwrap();
        let _ = answered_tx.send(answer);
        let done = json!({"jsonrpc": "2.0", "id": id_of(&call), "result": {}});
        send_json(&mut output, &done).await;
        std::future::pending::<()>().await;
    });
    let (one, mut one_lines) = client(7);
    let call = owned_by(&one);
    let relay = async {
        let Some(ServerEvent::Request {
            upstream,
            id,
            method,
            params,
            owners,
        }) = events.recv().await
        else {
            panic!("expected a server request");
        };
        assert_eq!(owners.iter().map(|o| o.client.id).collect::<Vec<_>>(), [7]);
        let client = Ok(Arc::clone(&owners[0].client));
        let relayed = tokio::spawn(upstream.relay_to_client(id, method, params, client));
        let asked = next_json(&mut one_lines).await;
        assert_eq!(asked["method"], "sampling/createMessage");
        assert_eq!(asked["params"], json!({"maxTokens": 5}));
        let reply = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{{\"role\":\"assistant\"}}}}",
            asked["id"]
        );
        one.answer(Message::parse(&reply).unwrap());
        relayed.await.unwrap();
    };
    let (reply, ()) = tokio::join!(upstream.request("tools/call", None, &call), relay);
    assert!(reply.unwrap().is_ok());
    let answer: serde_json::Value = serde_json::from_str(&answered_rx.await.unwrap()).unwrap();
    assert_eq!(
        answer,
        json!({"jsonrpc": "2.0", "id": "s-1", "result": {"role": "assistant"}})
    );
}

#[tokio::test]
async fn a_server_withdrawing_its_request_withdraws_it_from_the_client() {
    let (upstream, mut events) = with_server_events(|_input, mut output| async move {
        send_json(
            &mut output,
            &json!({"jsonrpc": "2.0", "id": 5, "method": "roots/list"}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}});
        send_json(&mut output, &cancel).await;
        std::future::pending::<()>().await;
    });
    let (client, mut lines) = client(3);
    let Some(ServerEvent::Request {
        upstream: up,
        id,
        method,
        params,
        owners,
    }) = events.recv().await
    else {
        panic!("expected a server request");
    };
    assert!(owners.is_empty());
    let relayed = tokio::spawn(up.relay_to_client(id, method, params, Ok(Arc::clone(&client))));
    let asked = next_json(&mut lines).await;
    assert_eq!(asked["method"], "roots/list");
    let withdrawn = next_json(&mut lines).await;
    assert_eq!(withdrawn["method"], "notifications/cancelled");
    assert_eq!(withdrawn["params"]["requestId"], asked["id"]);
    relayed.await.unwrap();
    assert!(
        !client.forget(asked["id"].as_u64().unwrap()),
        "still waiting for an answer"
    );
    drop(upstream);
}

/// A fake server that answers its first request after `count` notifications of `bytes` bytes.
async fn flood_then_answer(
    mut input: BufReader<tokio::io::DuplexStream>,
    mut output: tokio::io::DuplexStream,
    count: u64,
    bytes: usize,
) {
    let mut call = String::new();
    input.read_line(&mut call).await.unwrap();
    let data = "x".repeat(bytes);
    for seq in 0..count {
        let flood = json!({"jsonrpc": "2.0", "method": "notifications/flood",
            "params": {"seq": seq, "data": data}});
        send_json(&mut output, &flood).await;
    }
    let done = json!({"jsonrpc": "2.0", "id": id_of(&call), "result": {"done": true}});
    send_json(&mut output, &done).await;
    std::future::pending::<()>().await;
}

/// The `seq` of a queued notification.
fn seq_of(event: ServerEvent) -> u64 {
    let ServerEvent::Notification { params, .. } = event else {
        panic!("expected a notification");
    };
    let params: serde_json::Value = serde_json::from_str(params.unwrap().get()).unwrap();
    params["seq"].as_u64().unwrap()
}

/// Drains `events` as the gateway would, keeping each notification's `seq`, resting `rest`
/// after each.
fn drain(mut events: mpsc::Receiver<ServerEvent>, rest: Duration) -> Arc<Mutex<Vec<u64>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            kept.lock().unwrap().push(seq_of(event));
            if !rest.is_zero() {
                tokio::time::sleep(rest).await;
            }
        }
    });
    seen
}

/// Waits until `seen` holds `count` notifications.
async fn drained(seen: &Mutex<Vec<u64>>, count: usize) -> Vec<u64> {
    tokio::time::timeout(TIMEOUT, async {
        while seen.lock().unwrap().len() < count {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("every notification reaches the gateway");
    seen.lock().unwrap().clone()
}

#[tokio::test]
async fn a_full_event_queue_holds_the_reader_and_loses_nothing() {
    let (upstream, events) =
        with_server_events(|input, output| flood_then_answer(input, output, 100, 10));
    // Slower than the server writes, so the queue fills.
    let seen = drain(events, Duration::from_millis(1));
    let reply = upstream
        .request("tools/call", None, &caller(TIMEOUT))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.get(), r#"{"done":true}"#);
    assert_eq!(
        drained(&seen, 100).await,
        (0..100).collect::<Vec<_>>(),
        "all of them, in order, though the queue holds 16"
    );
}

#[tokio::test]
async fn a_queue_nobody_drains_drops_past_the_wait_and_answers_still_arrive() {
    // Four more than the queue holds: each of those waits `QUEUE_WAIT`, then is dropped.
    let (upstream, mut events) =
        with_server_events(|input, output| flood_then_answer(input, output, 20, 10));
    let reply = upstream
        .request("tools/call", None, &caller(TIMEOUT * 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.get(), r#"{"done":true}"#);
    let mut queued = Vec::new();
    while let Ok(event) = events.try_recv() {
        queued.push(seq_of(event));
    }
    assert_eq!(
        queued,
        (0..16).collect::<Vec<_>>(),
        "the first ones, in order"
    );
}

#[tokio::test]
async fn a_throttled_flood_still_answers_and_another_server_answers_meanwhile() {
    let flood = 2 * budget::BURST_LINES as u64;
    let (flooder, events) =
        with_server_events(move |input, output| flood_then_answer(input, output, flood, 10));
    let seen = drain(events, Duration::ZERO);
    let calm = with_server(|mut input, mut output| async move {
        let mut line = String::new();
        while input.read_line(&mut line).await.unwrap() > 0 {
            let answer = json!({"jsonrpc": "2.0", "id": id_of(&line), "result": {}});
            send_json(&mut output, &answer).await;
            line.clear();
        }
    });
    let call = tokio::spawn({
        let flooder = Arc::clone(&flooder);
        async move {
            flooder
                .request("tools/call", None, &caller(TIMEOUT * 6))
                .await
        }
    });
    tokio::time::timeout(TIMEOUT, async {
        while !flooder.throttled().1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the flood past the burst pauses the reader");
    for _ in 0..3 {
        calm.request("tools/call", None, &caller(TIMEOUT))
            .await
            .unwrap()
            .unwrap();
        assert!(
            !call.is_finished(),
            "the other server answers while the flood is held back"
        );
    }
    let reply = call.await.unwrap().unwrap().unwrap();
    assert_eq!(reply.get(), r#"{"done":true}"#, "the flooder still answers");
    assert_eq!(
        drained(&seen, flood as usize).await.len(),
        flood as usize,
        "throttling loses nothing"
    );
    assert_eq!(flooder.throttled().0, 1, "one episode");
}

/// Nobody drains the queue here: the second and third notification wait `QUEUE_WAIT` for the
/// bytes the first holds, then are dropped.
#[tokio::test]
async fn large_notifications_are_dropped_past_the_queues_bytes() {
    let (gateway_in, mut server_out) = tokio::io::duplex(1 << 16);
    let (server_in, gateway_out) = tokio::io::duplex(1 << 16);
    let (upstream, mut events) = spawn_fake(
        gateway_out,
        gateway_in,
        Arc::new(LogTail::new("fake")),
        32 << 20,
    );
    tokio::spawn(async move {
        let mut input = BufReader::new(server_in);
        let mut call = String::new();
        input.read_line(&mut call).await.unwrap();
        let data = "x".repeat(queues::QUEUE_BYTES / 2 + 1);
        for seq in 0..3 {
            let big = json!({"jsonrpc": "2.0", "method": "notifications/big", "params": {"seq": seq, "data": data}});
            send_json(&mut server_out, &big).await;
        }
        let done = json!({"jsonrpc": "2.0", "id": id_of(&call), "result": {}});
        send_json(&mut server_out, &done).await;
        std::future::pending::<()>().await;
    });
    upstream
        .request("tools/call", None, &caller(TIMEOUT))
        .await
        .unwrap()
        .unwrap();
    let Ok(ServerEvent::Notification { params, .. }) = events.try_recv() else {
        panic!("the first large notification is queued");
    };
    let params: serde_json::Value = serde_json::from_str(params.unwrap().get()).unwrap();
    assert_eq!(params["seq"], 0);
    assert!(
        events.try_recv().is_err(),
        "the others did not fit in the bytes left"
    );
}
