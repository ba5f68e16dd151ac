//! A queue of its own for each server connection's unprompted traffic ([`ServerEvent`]), so that
//! one server flooding notifications fills only its own, and every other server's logs, list
//! changes, resource updates and requests for a client pass at once. A connection whose queue is
//! full waits for room (its reader stops, which holds up only that server) and drops only past
//! [`QUEUE_WAIT`].
//!
//! The pool opens a queue for each connection it spawns; the gateway receives the other end and
//! drains each queue in a task of its own, which the runtime schedules fairly beside the others.

use tokio::sync::mpsc;

use super::ServerEvent;

/// Events one server may have waiting for the gateway; past it, its reader waits for room.
pub const QUEUE: usize = 256;

/// Bytes of notification parameters one server may have waiting for the gateway; past it, its
/// reader waits too, so that a flood of large ones cannot park `QUEUE` times the line limit.
/// One larger than this still passes when nothing else of the server waits.
pub const QUEUE_BYTES: usize = 8 << 20;

/// How long a notification waits for room in a full queue before it is dropped (its requests
/// wait as long as it takes). Waiting is safe because the gateway's drain never waits on a
/// client (a session that does not read has its own notifications dropped, in `downstream`):
/// a full queue only means the drain is behind by CPU, which a second makes up many times
/// over. A queue full for longer means the gateway is stuck, and dropping keeps the server's
/// answers coming.
pub const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The queues of connections yet to be drained, as the gateway receives them.
pub type NewQueues = mpsc::UnboundedReceiver<mpsc::Receiver<ServerEvent>>;

/// Opens a queue per server connection and hands its receiving end to the gateway.
#[derive(Clone)]
pub struct EventQueues {
    new: mpsc::UnboundedSender<mpsc::Receiver<ServerEvent>>,
}

impl EventQueues {
    pub fn new() -> (EventQueues, NewQueues) {
        let (new, queues) = mpsc::unbounded_channel();
        (EventQueues { new }, queues)
    }

    /// A new connection's queue. Once the gateway is gone the receiver is dropped at once, so
    /// the connection's sends fail as they would on a closed queue.
    pub fn open(&self) -> mpsc::Sender<ServerEvent> {
        let (events, queue) = mpsc::channel(QUEUE);
        let _ = self.new.send(queue);
        events
    }
}
