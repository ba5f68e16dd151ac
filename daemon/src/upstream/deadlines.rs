//! Request timeouts of one server connection, kept by one timer for all of its requests.
//!
//! A `tokio::time::Sleep` per request registers a timer on every call, and tokio wakes its own
//! driver (an `eventfd` write and one more `epoll_wait`) whenever a new timer is due before the
//! one it last slept for, which after an idle moment is every call. One timer per connection,
//! armed at the earliest deadline and left armed when that request ends, costs a call nothing:
//! a later request's deadline is later, so it is looked at only when the timer fires, and the
//! timer is re-armed then at the earliest deadline still pending.
//!
//! Lock order: the sweep holds `armed` while it looks through the connection's requests, and a
//! request is parked before its deadline is noted, so a deadline noted during a sweep is either
//! seen by it or compared with what it armed.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Default)]
pub struct Deadlines {
    /// When the timer fires next; `None` while no request is pending past the last sweep.
    armed: Mutex<Option<Instant>>,
    rearm: Notify,
}

impl Deadlines {
    /// The deadline of a request made now that may take `timeout`; a timeout too large to add
    /// is thirty years, as tokio's own far future.
    pub fn after(timeout: Duration) -> Instant {
        let now = Instant::now();
        now.checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
    }

    /// Notes a parked request's deadline: the timer is moved only when it is due earlier than
    /// the timer fires, or the timer is not armed.
    pub fn note(&self, deadline: Instant) {
        let mut armed = self.lock();
        if armed.is_none_or(|at| deadline < at) {
            *armed = Some(deadline);
            self.rearm.notify_one();
        }
    }

    /// Runs the timer until the connection ends (the future is dropped). `expire` is called when
    /// it fires, with the time: it fails the requests past their deadline and returns the
    /// earliest deadline of those left.
    pub async fn run(&self, expire: impl Fn(Instant) -> Option<Instant>) {
        loop {
            let at = *self.lock();
            tokio::select! {
                () = until(at) => {}
                () = self.rearm.notified() => continue,
            }
            // Held while `expire` looks (see the lock order above); `*self.lock() = ...` would
            // take the lock only after `expire` returned.
            let mut armed = self.lock();
            *armed = expire(Instant::now());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.armed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sleeps until `deadline`, or forever without one.
pub async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Pending deadlines, by name, as the connection's requests would hold them.
    #[derive(Default)]
    struct Requests(Mutex<Vec<(&'static str, Instant)>>);

    impl Requests {
        fn park(&self, deadlines: &Deadlines, name: &'static str, timeout: Duration) {
            let deadline = Deadlines::after(timeout);
            self.0.lock().unwrap().push((name, deadline));
            deadlines.note(deadline);
        }

        /// Removes the expired requests into `expired` and returns the earliest deadline left.
        fn expire(&self, now: Instant, expired: &Mutex<Vec<&'static str>>) -> Option<Instant> {
            let mut pending = self.0.lock().unwrap();
            pending.retain(|(name, deadline)| {
                let keep = *deadline > now;
                if !keep {
                    expired.lock().unwrap().push(name);
                }
                keep
            });
            pending.iter().map(|(_, deadline)| *deadline).min()
        }
    }

    /// A connection's deadlines and requests, the names of those expired, and its timer task.
    struct Connection {
        deadlines: Arc<Deadlines>,
        requests: Arc<Requests>,
        expired: Arc<Mutex<Vec<&'static str>>>,
        timer: tokio::task::JoinHandle<()>,
    }

    fn start() -> Connection {
        let deadlines = Arc::new(Deadlines::default());
        let requests = Arc::new(Requests::default());
        let expired = Arc::new(Mutex::new(Vec::new()));
        let timer = {
            let (deadlines, requests, expired) =
                (deadlines.clone(), requests.clone(), expired.clone());
            tokio::spawn(async move { deadlines.run(|now| requests.expire(now, &expired)).await })
        };
        Connection {
            deadlines,
            requests,
            expired,
            timer,
        }
    }

    impl Connection {
        fn park(&self, name: &'static str, timeout: Duration) {
            self.requests.park(&self.deadlines, name, timeout);
        }

        fn expired(&self) -> Vec<&'static str> {
            self.expired.lock().unwrap().clone()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_request_expires_at_its_own_deadline_whatever_the_order_they_came_in() {
        let connection = start();
        connection.park("slow", Duration::from_secs(10));
        // Parked later but due earlier: the armed timer has to move for it.
        connection.park("quick", Duration::from_secs(2));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(connection.expired().is_empty());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(connection.expired(), ["quick"]);
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert_eq!(connection.expired(), ["quick", "slow"]);
        connection.timer.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_left_armed_by_an_ended_request_still_expires_the_next_one() {
        let connection = start();
        connection.park("answered", Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The first request is answered; the timer stays armed at its deadline.
        connection.requests.0.lock().unwrap().clear();
        connection.park("silent", Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(
            connection.expired().is_empty(),
            "nothing is due at the first deadline"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(connection.expired(), ["silent"]);
        assert_eq!(
            *connection.deadlines.lock(),
            None,
            "nothing left to wait for"
        );
        connection.timer.abort();
    }

    #[test]
    fn a_timeout_too_large_to_add_is_the_far_future() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert!(Deadlines::after(Duration::MAX) > Instant::now() + Duration::from_secs(86_400));
        });
    }
}
