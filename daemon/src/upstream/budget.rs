//! The budget of unprompted output one server connection may write: notifications, log
//! messages, requests, and lines the gateway throws away (not JSON, not JSON-RPC, overlong,
//! answers to ids it never sent). Past the budget the reader stops reading the server for a
//! while instead of reading as fast as it can and dropping: the pipe and the engine's attach
//! stream fill, the engine stops relaying, and the server blocks on its own write, so a flood
//! costs the daemon, the engine and the server little CPU. Answers behind the flood wait with it,
//! which only the flooding server's own callers notice.
//!
//! Two token buckets, one in lines and one in bytes, each with a burst and a sustained rate; a
//! line is charged to both. Once either is in debt the reader pauses until both have earned back
//! [`RESUME_SHARE`] of their burst, so that a throttled server is read in runs of lines rather
//! than woken for each. An episode of throttling lasts from the first pause until both buckets
//! are full again, and is logged once.

use std::time::Duration;

use tokio::time::Instant;

/// Unprompted lines a server may write at once. Several times the few hundred log lines of a
/// busy start-up or of one chatty call, so that those are never paused.
pub const BURST_LINES: f64 = 4096.0;
/// Unprompted lines per second a server may keep writing. One server is shared by every
/// session of its profile: ten concurrent long calls each reporting progress fifty times a
/// second are half of it.
pub const LINES_PER_SEC: f64 = 1000.0;
/// Bytes of unprompted output a server may write at once: what its event queue may hold
/// ([`super::queues::QUEUE_BYTES`]), so a burst that fits is never paused.
pub const BURST_BYTES: f64 = 8.0 * 1024.0 * 1024.0;
/// Bytes of unprompted output per second a server may keep writing: its whole line rate of
/// notifications of 2 KiB, ten times a typical log message.
pub const BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;
/// The share of each burst a paused server must have earned back before it is read again:
/// an eighth is half a second of lines, a run long enough that the reader does not wake per line.
pub const RESUME_SHARE: f64 = 0.125;

struct Bucket {
    level: f64,
    burst: f64,
    rate: f64,
}

impl Bucket {
    fn full(burst: f64, rate: f64) -> Bucket {
        Bucket {
            level: burst,
            burst,
            rate,
        }
    }

    fn refill(&mut self, elapsed: Duration) {
        self.level = (self.level + self.rate * elapsed.as_secs_f64()).min(self.burst);
    }

    fn is_full(&self) -> bool {
        self.level >= self.burst
    }

    /// How long until the level is back to [`RESUME_SHARE`] of the burst.
    fn until_resume(&self) -> Duration {
        let missing = self.burst * RESUME_SHARE - self.level;
        Duration::from_secs_f64((missing / self.rate).max(0.0))
    }
}

/// What charging one line decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Charged {
    /// Within the budget: read on.
    Within,
    /// Over it: read nothing before `until`. `first` for the first pause of an episode.
    Paused { until: Instant, first: bool },
}

pub struct Budget {
    lines: Bucket,
    bytes: Bucket,
    /// When the buckets were last refilled.
    refilled: Instant,
    /// Whether an episode of throttling is going on.
    episode: bool,
}

impl Budget {
    pub fn new(now: Instant) -> Budget {
        Budget {
            lines: Bucket::full(BURST_LINES, LINES_PER_SEC),
            bytes: Bucket::full(BURST_BYTES, BYTES_PER_SEC),
            refilled: now,
            episode: false,
        }
    }

    /// Charges one unprompted line of `bytes` bytes, read at `now`.
    pub fn charge(&mut self, bytes: usize, now: Instant) -> Charged {
        let elapsed = now.saturating_duration_since(self.refilled);
        self.refilled = now;
        self.lines.refill(elapsed);
        self.bytes.refill(elapsed);
        if self.episode && self.lines.is_full() && self.bytes.is_full() {
            self.episode = false;
        }
        self.lines.level -= 1.0;
        self.bytes.level -= bytes as f64;
        if self.lines.level >= 0.0 && self.bytes.level >= 0.0 {
            return Charged::Within;
        }
        let first = !self.episode;
        self.episode = true;
        Charged::Paused {
            until: now + self.lines.until_resume().max(self.bytes.until_resume()),
            first,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG_LINE: usize = 200;

    /// Charges `count` lines of `bytes` at `now`, returning the first pause.
    fn charge_many(budget: &mut Budget, count: usize, bytes: usize, now: Instant) -> Charged {
        for _ in 0..count {
            let charged = budget.charge(bytes, now);
            if charged != Charged::Within {
                return charged;
            }
        }
        Charged::Within
    }

    #[test]
    fn a_well_behaved_server_is_never_paused() {
        let start = Instant::now();
        let mut budget = Budget::new(start);
        // A start-up burst of a few hundred log lines, then a minute of a call's progress at
        // 100 per second beside bursts of 300 log lines every second.
        assert_eq!(
            charge_many(&mut budget, 500, LOG_LINE, start),
            Charged::Within
        );
        for tick in 1..=6000u32 {
            let now = start + Duration::from_millis(10) * tick;
            assert_eq!(budget.charge(LOG_LINE, now), Charged::Within, "tick {tick}");
            if tick % 100 == 0 {
                assert_eq!(
                    charge_many(&mut budget, 300, LOG_LINE, now),
                    Charged::Within
                );
            }
        }
    }

    #[test]
    fn a_flood_past_the_burst_is_paused_until_a_share_is_earned_back() {
        let start = Instant::now();
        let mut budget = Budget::new(start);
        assert_eq!(
            charge_many(&mut budget, BURST_LINES as usize, 10, start),
            Charged::Within
        );
        let resume = Duration::from_secs_f64((BURST_LINES * RESUME_SHARE + 1.0) / LINES_PER_SEC);
        let Charged::Paused { until, first } = budget.charge(10, start) else {
            panic!("a line past the burst is paused");
        };
        assert!(first, "the first pause opens an episode");
        assert!(
            until.duration_since(start).abs_diff(resume) < Duration::from_millis(1),
            "paused for {:?}, not {resume:?}",
            until.duration_since(start)
        );
        // The flood goes on after the pause: paused again after the share it earned, in the
        // same episode.
        let Charged::Paused { first, .. } = charge_many(&mut budget, 10_000, 10, until) else {
            panic!("the flood is paused again");
        };
        assert!(!first, "a flood that goes on is one episode");
    }

    #[test]
    fn a_line_past_the_byte_burst_is_paused_and_a_quiet_spell_ends_the_episode() {
        let start = Instant::now();
        let mut budget = Budget::new(start);
        let Charged::Paused { until, first } = budget.charge(BURST_BYTES as usize + 1, start)
        else {
            panic!("a line larger than the byte burst is paused");
        };
        assert!(first);
        let resume = BURST_BYTES * RESUME_SHARE / BYTES_PER_SEC;
        assert!(until.duration_since(start) >= Duration::from_secs_f64(resume));
        // Quiet long enough for both buckets to fill: the next flood is a new episode.
        let later = start + Duration::from_secs_f64(BURST_BYTES / BYTES_PER_SEC + 1.0);
        assert_eq!(budget.charge(10, later), Charged::Within);
        let Charged::Paused { first, .. } =
            charge_many(&mut budget, BURST_LINES as usize + 1, 10, later)
        else {
            panic!("a second flood is paused");
        };
        assert!(first, "a flood after a quiet spell is a new episode");
    }
}
