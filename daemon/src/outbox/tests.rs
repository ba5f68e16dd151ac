//! The outbox against tokio's in-memory pipe, whose small buffers make writes block and end
//! halfway through a line.

use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, DuplexStream};

use super::*;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The outboxes' count of lines that may wait.
const MAX_LINES: usize = 256;

/// Everything the other end receives until the outbox shuts the stream down.
async fn read_to_end(mut end: DuplexStream) -> String {
    let mut text = String::new();
    tokio::time::timeout(TIMEOUT, end.read_to_string(&mut text))
        .await
        .expect("the stream was not shut down")
        .unwrap();
    text
}

/// An outbox over an in-memory pipe with `room` bytes of buffer, its writer task running, and the
/// pipe's other end.
fn running(room: usize) -> (Arc<Outbox>, tokio::task::JoinHandle<()>, DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(room);
    let (outbox, write_queued) = Outbox::new(ours, MAX_LINES);
    (outbox, tokio::spawn(write_queued), theirs)
}

#[tokio::test]
async fn a_line_the_stream_has_room_for_is_written_by_its_sender() {
    let (ours, mut theirs) = tokio::io::duplex(1024);
    // The writer task is never run: only the sender can have written the line.
    let (outbox, _write_queued) = Outbox::new(ours, MAX_LINES);
    assert_eq!(outbox.send("one\n".into()).now_or_never(), Some(true));
    assert!(outbox.offer("two\n".into(), 0));
    let mut received = [0; 8];
    theirs.read_exact(&mut received).await.unwrap();
    assert_eq!(&received, b"one\ntwo\n");
    assert_eq!(outbox.waiting(), 0);
}

#[tokio::test]
async fn a_batched_line_waits_for_the_writer_task_and_so_do_lines_behind_it() {
    let (ours, mut theirs) = tokio::io::duplex(1024);
    let (outbox, write_queued) = Outbox::new(ours, MAX_LINES);
    assert_eq!(
        outbox.send_batched("one\n".into()).now_or_never(),
        Some(true)
    );
    assert_eq!(outbox.send("two\n".into()).now_or_never(), Some(true));
    let mut received = [0; 8];
    assert!(
        theirs.read(&mut received).now_or_never().is_none(),
        "a sender wrote"
    );
    let writer = tokio::spawn(write_queued);
    theirs.read_exact(&mut received).await.unwrap();
    assert_eq!(&received, b"one\ntwo\n");
    outbox.close();
    writer.await.unwrap();
}

#[tokio::test]
async fn lines_that_would_block_are_written_later_whole_and_in_order() {
    // Eleven bytes of room: writes block, and most end inside a line, or inside a character.
    let (outbox, writer, theirs) = running(11);
    let reader = tokio::spawn(read_to_end(theirs));
    let lines: Vec<String> = (0..500)
        .map(|n| format!("{{\"n\":{n},\"text\":\"{}\"}}\n", "é—".repeat(n % 7)))
        .collect();
    for line in &lines {
        assert!(outbox.send(line.clone()).await);
    }
    outbox.close();
    assert!(
        !outbox.send("late\n".into()).await,
        "a closed outbox took a line"
    );
    assert_eq!(reader.await.unwrap(), lines.concat());
    writer.await.unwrap();
}

#[tokio::test]
async fn answers_wait_for_room_and_notifications_are_dropped() {
    let (outbox, writer, theirs) = running(1);
    for n in 0..MAX_LINES {
        assert_eq!(
            outbox.send(format!("{n}\n")).now_or_never(),
            Some(true),
            "line {n} waited"
        );
    }
    assert!(
        !outbox.offer("note\n".into(), usize::MAX),
        "past the count of lines"
    );
    let mut waiting = Box::pin(outbox.send("answer\n".into()));
    assert!(
        (&mut waiting).now_or_never().is_none(),
        "a full outbox took an answer"
    );
    // Reading makes room: the answer goes after every line before it, the notification nowhere.
    let reader = tokio::spawn(read_to_end(theirs));
    assert!(tokio::time::timeout(TIMEOUT, waiting).await.unwrap());
    outbox.close();
    let expected: String = (0..MAX_LINES).map(|n| format!("{n}\n")).collect();
    assert_eq!(reader.await.unwrap(), expected + "answer\n");
    writer.await.unwrap();
}

#[tokio::test]
async fn notifications_stop_at_the_byte_budget_but_a_lone_one_always_goes() {
    let (ours, theirs) = tokio::io::duplex(1);
    let (outbox, write_queued) = Outbox::new(ours, MAX_LINES);
    let line = "x".repeat(99) + "\n";
    let taken = (0..10).filter(|_| outbox.offer(line.clone(), 350)).count();
    // The first byte went to the stream; the rest of the first line and two more fit in 350.
    assert_eq!(taken, 3);
    assert_eq!(outbox.waiting(), 299);
    let reader = tokio::spawn(read_to_end(theirs));
    let writer = tokio::spawn(write_queued);
    while outbox.waiting() > 0 {
        tokio::task::yield_now().await;
    }
    let huge = "y".repeat(999) + "\n";
    assert!(
        outbox.offer(huge.clone(), 350),
        "a lone line over the budget was dropped"
    );
    outbox.close();
    assert_eq!(reader.await.unwrap(), line.repeat(3) + &huge);
    writer.await.unwrap();
}

#[tokio::test]
async fn a_client_gone_fails_its_senders_and_ends_the_writer() {
    let (outbox, writer, theirs) = running(4);
    // Queued behind a full stream, then the reader goes.
    assert!(outbox.send("a long line\n".into()).await);
    drop(theirs);
    tokio::time::timeout(TIMEOUT, writer)
        .await
        .expect("the writer outlived its client")
        .unwrap();
    assert!(!outbox.send("more\n".into()).await);
    assert!(!outbox.offer("more\n".into(), usize::MAX));
    assert_eq!(outbox.waiting(), 0);
}
