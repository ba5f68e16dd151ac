//! Response bodies: one JSON object, or a `text/event-stream` of JSON-RPC messages with
//! keep-alive comments, which also reveal a client that went away.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode, header};
use tokio::sync::mpsc;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// How often an idle event stream carries a comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// A JSON body with `status`.
pub fn json(status: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// An event stream of the lines `lines` yields, until its senders are gone. `guard` lives as long
/// as the body: its drop tells the sender side that the client stopped reading. It opens with a
/// keep-alive comment, since hyper sends the response's head with its first bytes: without one,
/// a client would not know the stream open until the first message or keep-alive.
pub fn stream<G: Send + 'static>(lines: mpsc::Receiver<String>, guard: G) -> Response<Body> {
    // The first tick is at once.
    let tick = tokio::time::interval(KEEP_ALIVE);
    let events = futures_util::stream::unfold(
        (lines, tick, guard),
        |(mut lines, mut tick, guard)| async move {
            let chunk = tokio::select! {
                line = lines.recv() => Bytes::from(format!("event: message\ndata: {}\n\n", line?.trim_end())),
                _ = tick.tick() => Bytes::from_static(b": keep-alive\n\n"),
            };
            Some((chunk, (lines, tick, guard)))
        },
    );
    let body = StreamBody::new(events.map(|chunk| Ok::<_, Infallible>(Frame::data(chunk))));
    let mut response = Response::new(body.boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    headers.insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    response
}
