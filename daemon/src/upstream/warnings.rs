//! Warnings about what one server writes, at a bounded rate: a hostile server can write a bad
//! line (oversized, not UTF-8, not JSON, not JSON-RPC, a response to an id never sent) or a
//! notification the gateway has no room for as fast as it likes, and each one must not become a
//! line of the journal. The first [`PER_WINDOW`] bad lines of a [`WINDOW`] are logged one by one;
//! the rest of that window, and the notifications dropped in it, are counted and logged as one
//! summary line when the window ends (or the connection does). An episode of throttling (see
//! `budget`) is one line, at its start; episodes are bounded by the budget itself, since a new
//! one begins only once the server has stayed within its budget long enough to refill it.

use std::time::Duration;

use tokio::time::Instant;

/// How long one budget of warnings lasts, counted from the first warning after a quiet spell.
pub const WINDOW: Duration = Duration::from_secs(5);
/// Bad lines logged one by one per window and server.
pub const PER_WINDOW: u32 = 10;

pub struct Warnings {
    server: String,
    /// When the current window ends; `None` while nothing was complained about.
    ends: Option<Instant>,
    logged: u32,
    suppressed: u64,
    dropped: u64,
}

impl Warnings {
    pub fn new(server: &str) -> Warnings {
        Warnings {
            server: server.to_owned(),
            ends: None,
            logged: 0,
            suppressed: 0,
            dropped: 0,
        }
    }

    /// When a summary is owed, for the reader to wake up for even when the server falls silent.
    pub fn summary_due(&self) -> Option<Instant> {
        self.ends
            .filter(|_| self.suppressed > 0 || self.dropped > 0)
    }

    /// One bad line from the server, with why it was ignored.
    pub fn bad_line(&mut self, why: std::fmt::Arguments<'_>) {
        self.open_window();
        if self.logged < PER_WINDOW {
            self.logged += 1;
            tracing::warn!(server = %self.server, "{why}");
        } else {
            self.suppressed += 1;
        }
    }

    /// One notification dropped because the server's queue stayed full; the first of a window
    /// says so, the rest are counted.
    pub fn dropped(&mut self) {
        self.open_window();
        if self.dropped == 0 {
            tracing::warn!(
                server = %self.server,
                "the gateway routed none of the server's queue of {} for {} s; dropping its \
                 notifications while the queue is full",
                super::queues::QUEUE,
                super::queues::QUEUE_WAIT.as_secs()
            );
        }
        self.dropped += 1;
    }

    /// The server went past its budget of unprompted output and its reader pauses.
    pub fn throttled(&self) {
        use super::budget::{BURST_LINES, BYTES_PER_SEC, LINES_PER_SEC};
        tracing::warn!(
            server = %self.server,
            "the server writes unprompted output past its budget ({BURST_LINES} lines at once, \
             then {LINES_PER_SEC} lines or {} MiB a second); reading it more slowly, which \
             delays its own answers",
            BYTES_PER_SEC / (1024.0 * 1024.0)
        );
    }

    /// Logs what the window counted and not logged, and closes the window.
    pub fn summarize(&mut self) {
        let mut counted = Vec::new();
        if self.suppressed > 0 {
            counted.push(format!(
                "{} more bad output lines not logged",
                self.suppressed
            ));
        }
        if self.dropped > 0 {
            counted.push(format!("{} notifications dropped", self.dropped));
        }
        if !counted.is_empty() {
            tracing::warn!(
                server = %self.server,
                "{} in the last {} s",
                counted.join(" and "),
                WINDOW.as_secs()
            );
        }
        self.ends = None;
        self.logged = 0;
        self.suppressed = 0;
        self.dropped = 0;
    }

    fn open_window(&mut self) {
        match self.ends {
            Some(ends) if Instant::now() >= ends => {
                self.summarize();
                self.ends = Some(Instant::now() + WINDOW);
            }
            Some(_) => {}
            None => self.ends = Some(Instant::now() + WINDOW),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_logs_its_budget_then_counts() {
        let mut warnings = Warnings::new("evil");
        assert_eq!(warnings.summary_due(), None);
        let opened = Instant::now();
        for n in 0..PER_WINDOW + 7 {
            warnings.bad_line(format_args!("bad line {n}"));
        }
        warnings.dropped();
        warnings.dropped();
        assert_eq!((warnings.logged, warnings.suppressed), (PER_WINDOW, 7));
        assert_eq!(warnings.dropped, 2);
        let due = warnings.summary_due().expect("a summary is owed");
        assert!(due >= opened + WINDOW && due <= Instant::now() + WINDOW);
        // The window is over: the next bad line opens another, with a budget of its own.
        warnings.ends = Some(Instant::now());
        warnings.bad_line(format_args!("a line of the next window"));
        assert_eq!((warnings.logged, warnings.suppressed), (1, 0));
        assert_eq!(warnings.dropped, 0);
        assert_eq!(warnings.summary_due(), None, "nothing is counted yet");
    }
}
