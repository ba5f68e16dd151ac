//! How long a failing server waits before its next start: 1 s after the first failure, doubling
//! up to 60 s, and back to 1 s once a container has stayed up for five minutes.

use std::time::Duration;

const FIRST: Duration = Duration::from_secs(1);
const CAP: Duration = Duration::from_secs(60);
/// A container that ran this long before failing counts as healthy: its failure starts a new
/// series instead of lengthening the last one.
const HEALTHY: Duration = Duration::from_secs(5 * 60);

/// Consecutive failures of one (profile, server).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Records a failure after the container ran for `ran_for` (zero for a failed start) and
    /// returns how long the next start must wait.
    pub fn failed(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= HEALTHY {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        delay(self.failures)
    }

    /// Whether the last start followed a failure.
    pub fn after_failure(&self) -> bool {
        self.failures > 0
    }
}

/// The wait after `failures` consecutive failures (at least one).
fn delay(failures: u32) -> Duration {
    // 2^6 s already passes the cap; a smaller shift keeps the multiplication from overflowing.
    let doublings = failures.saturating_sub(1).min(6);
    (FIRST * 2u32.pow(doublings)).min(CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_one_second_to_the_cap() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..9)
            .map(|_| backoff.failed(Duration::from_secs(2)).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert!(backoff.after_failure());
    }

    #[test]
    fn a_healthy_run_starts_a_new_series() {
        let mut backoff = Backoff::default();
        for _ in 0..5 {
            backoff.failed(Duration::ZERO);
        }
        assert_eq!(
            backoff.failed(HEALTHY - Duration::from_secs(1)),
            CAP.min(Duration::from_secs(32))
        );
        assert_eq!(backoff.failed(HEALTHY), FIRST);
        assert_eq!(backoff.failed(Duration::ZERO), Duration::from_secs(2));
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut backoff = Backoff {
            failures: u32::MAX - 1,
        };
        assert_eq!(backoff.failed(Duration::ZERO), CAP);
        assert_eq!(backoff.failed(Duration::ZERO), CAP);
    }
}
