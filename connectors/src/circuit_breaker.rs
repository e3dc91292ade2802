//! A circuit breaker for calls to an outside system that is slow and sometimes down (the
//! legacy TCM system above all): after `failure_threshold` failures in a row it **opens** and
//! refuses calls for `open_for`, so a struggling system is not hammered and the work waits
//! (parked, not failed); then it lets **one** probe through (**half-open**): its success
//! closes the breaker after `close_after` successes, its failure opens it again.
//!
//! Pure: the caller passes the time, so every transition is tested without sleeping. The
//! state is exported as a gauge (0 closed, 1 open, 2 half-open).

use std::time::{Duration, Instant};

/// When the breaker opens and how it recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures in a row that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before it lets a probe through.
    pub open_for: Duration,
    /// Successful probes in a row that close a half-open breaker.
    pub close_after: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
            close_after: 2,
        }
    }
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// Calls are refused until `until`.
    Open { until: Instant },
    /// One probe at a time; `successes` in a row so far.
    HalfOpen { successes: u32, probing: bool },
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Closed { .. } => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen { .. } => "half_open",
        }
    }

    /// The state as a gauge: 0 closed, 1 open, 2 half-open.
    pub fn gauge(&self) -> i64 {
        match self {
            Self::Closed { .. } => 0,
            Self::Open { .. } => 1,
            Self::HalfOpen { .. } => 2,
        }
    }
}

/// A call may go ahead, or must wait until the breaker lets calls through again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Refused: try again at `retry_at` at the earliest.
    Refused {
        retry_at: Instant,
    },
}

/// One breaker per outside system (not per tenant: the system is down for everyone).
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    state: BreakerState,
}

impl CircuitBreaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: BreakerState::Closed { failures: 0 },
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a call may start at `now`. A half-open breaker admits one probe at a time;
    /// every admitted call must be followed by [`Self::succeeded`] or [`Self::failed`].
    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            BreakerState::Closed { .. } => Admission::Allowed,
            BreakerState::Open { until } if now < until => Admission::Refused { retry_at: until },
            BreakerState::Open { .. } => {
                self.state = BreakerState::HalfOpen {
                    successes: 0,
                    probing: true,
                };
                Admission::Allowed
            }
            BreakerState::HalfOpen { probing: true, .. } => Admission::Refused {
                // The probe's answer decides; until then nobody else goes.
                retry_at: now + self.settings.open_for.min(Duration::from_secs(1)),
            },
            BreakerState::HalfOpen { successes, .. } => {
                self.state = BreakerState::HalfOpen {
                    successes,
                    probing: true,
                };
                Admission::Allowed
            }
        }
    }

    /// An admitted call succeeded.
    pub fn succeeded(&mut self) {
        self.state = match self.state {
            BreakerState::HalfOpen { successes, .. }
                if successes + 1 < self.settings.close_after =>
            {
                BreakerState::HalfOpen {
                    successes: successes + 1,
                    probing: false,
                }
            }
            _ => BreakerState::Closed { failures: 0 },
        };
    }

    /// An admitted call failed in a way that says the system is unwell (timeout, 5xx,
    /// connection refused) — not a refusal of the request itself (4xx), which says nothing
    /// about the system's health and must not open the breaker.
    pub fn failed(&mut self, now: Instant) {
        let open = BreakerState::Open {
            until: now + self.settings.open_for,
        };
        self.state = match self.state {
            BreakerState::Closed { failures } if failures + 1 < self.settings.failure_threshold => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            _ => open,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings {
            failure_threshold: 3,
            open_for: Duration::from_secs(30),
            close_after: 2,
        })
    }

    #[test]
    fn failures_in_a_row_open_it_and_a_success_between_resets_the_count() {
        let now = Instant::now();
        let mut b = breaker();
        b.failed(now);
        b.failed(now);
        b.succeeded();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        b.failed(now);
        b.failed(now);
        assert_eq!(
            b.admit(now),
            Admission::Allowed,
            "two failures: still closed"
        );
        b.failed(now);
        assert_eq!(b.state().name(), "open");
        assert_eq!(b.state().gauge(), 1);
        assert_eq!(
            b.admit(now + Duration::from_secs(29)),
            Admission::Refused {
                retry_at: now + Duration::from_secs(30)
            }
        );
    }

    #[test]
    fn after_the_open_period_one_probe_goes_and_its_answer_decides() {
        let now = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            b.failed(now);
        }
        let later = now + Duration::from_secs(30);
        assert_eq!(b.admit(later), Admission::Allowed, "the probe");
        assert_eq!(b.state().name(), "half_open");
        assert!(
            matches!(b.admit(later), Admission::Refused { .. }),
            "one probe at a time"
        );
        // The probe fails: open again for a whole period.
        b.failed(later);
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: later + Duration::from_secs(30)
            }
        );
        // Next time two probes succeed in a row: closed.
        let again = later + Duration::from_secs(30);
        assert_eq!(b.admit(again), Admission::Allowed);
        b.succeeded();
        assert_eq!(b.state().gauge(), 2, "one success is not enough");
        assert_eq!(b.admit(again), Admission::Allowed);
        b.succeeded();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        assert_eq!(b.state().gauge(), 0);
    }

    #[test]
    fn a_threshold_of_one_opens_at_the_first_failure() {
        let now = Instant::now();
        let mut b = CircuitBreaker::new(BreakerSettings {
            failure_threshold: 1,
            open_for: Duration::from_millis(10),
            close_after: 1,
        });
        b.failed(now);
        assert_eq!(b.state().name(), "open");
        assert_eq!(b.admit(now + Duration::from_millis(10)), Admission::Allowed);
        b.succeeded();
        assert_eq!(b.state().name(), "closed");
    }
}
