//! A consumer's circuit breaker on one worker: a plugin that faults on more
//! than `faults` of its last `messages` messages is not called for a
//! backoff (1 s, doubling up to the configured maximum); then one batch is
//! tried. A new build of the plugin closes the breaker at once. Without it a
//! build that traps on everything costs an instance rebuild per message,
//! and one that loops costs a whole deadline per message.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::BreakerSettings;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    /// The last `settings.messages` outcomes: true for a plugin fault.
    recent: VecDeque<bool>,
    faults: usize,
    /// Open until then; `None` while closed.
    open_until: Option<Instant>,
    backoff: Duration,
}

/// What to do with the next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Call,
    /// Open: the batch is not given to the plugin.
    Refuse,
}

/// A change worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened {
        faults: usize,
        of: usize,
        backoff: Duration,
    },
    Closed,
}

impl CircuitBreaker {
    pub fn new(settings: BreakerSettings) -> Self {
        CircuitBreaker {
            settings,
            recent: VecDeque::with_capacity(settings.messages),
            faults: 0,
            open_until: None,
            backoff: FIRST_BACKOFF,
        }
    }

    pub fn admit(&self, now: Instant) -> Admit {
        match self.open_until {
            Some(until) if now < until => Admit::Refuse,
            _ => Admit::Call,
        }
    }

    /// The outcomes of one plugin call, in order (true: a plugin fault).
    pub fn record(
        &mut self,
        now: Instant,
        outcomes: impl IntoIterator<Item = bool>,
    ) -> Option<Transition> {
        let mut any_ok = false;
        let mut any_fault = false;
        for fault in outcomes {
            any_ok |= !fault;
            any_fault |= fault;
            if self.recent.len() == self.settings.messages && self.recent.pop_front() == Some(true)
            {
                self.faults -= 1;
            }
            self.recent.push_back(fault);
            self.faults += usize::from(fault);
        }
        if self.open_until.is_some() {
            // A trial batch after the backoff: any good message closes,
            // faults alone open again for twice as long.
            if any_ok {
                return Some(self.close());
            }
            if any_fault {
                self.backoff = (self.backoff * 2).min(self.settings.max_backoff);
                return Some(self.open(now));
            }
            return None;
        }
        (self.faults > self.settings.faults).then(|| self.open(now))
    }

    /// A new build of the plugin: it gets a fresh chance.
    pub fn reset(&mut self) -> Option<Transition> {
        let was_open = self.open_until.is_some();
        *self = CircuitBreaker::new(self.settings);
        was_open.then_some(Transition::Closed)
    }

    fn open(&mut self, now: Instant) -> Transition {
        self.open_until = Some(now + self.backoff);
        Transition::Opened {
            faults: self.faults,
            of: self.recent.len(),
            backoff: self.backoff,
        }
    }

    fn close(&mut self) -> Transition {
        *self = CircuitBreaker::new(self.settings);
        Transition::Closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings {
            faults: 3,
            messages: 5,
            max_backoff: Duration::from_secs(4),
        })
    }

    #[test]
    fn opens_past_the_threshold_and_only_then() {
        let now = Instant::now();
        let mut b = breaker();
        assert_eq!(
            b.record(now, [true, false, true, false, true]),
            None,
            "3 of 5 is not more than 3"
        );
        assert_eq!(b.admit(now), Admit::Call);
        // The oldest outcome (a fault) leaves the window; still 3.
        assert_eq!(b.record(now, [true]), None);
        assert!(matches!(
            b.record(now, [true]),
            Some(Transition::Opened {
                faults: 4,
                of: 5,
                ..
            })
        ));
        assert_eq!(b.admit(now), Admit::Refuse);
        assert_eq!(b.admit(now + Duration::from_millis(999)), Admit::Refuse);
        assert_eq!(b.admit(now + Duration::from_secs(1)), Admit::Call);
    }

    #[test]
    fn a_failed_trial_doubles_the_backoff_up_to_the_maximum_and_a_good_one_closes() {
        let now = Instant::now();
        let mut b = breaker();
        b.record(now, [true; 4]);
        let mut backoffs = Vec::new();
        for _ in 0..4 {
            if let Some(Transition::Opened { backoff, .. }) = b.record(now, [true]) {
                backoffs.push(backoff.as_secs());
            }
        }
        assert_eq!(backoffs, [2, 4, 4, 4]);
        assert_eq!(b.record(now, [true, false]), Some(Transition::Closed));
        assert_eq!(b.admit(now), Admit::Call);
        assert_eq!(b.faults, 0);
    }

    #[test]
    fn a_new_build_closes_it() {
        let now = Instant::now();
        let mut b = breaker();
        b.record(now, [true; 4]);
        assert_eq!(b.admit(now), Admit::Refuse);
        assert_eq!(b.reset(), Some(Transition::Closed));
        assert_eq!(b.admit(now), Admit::Call);
        assert_eq!(b.reset(), None);
    }
}
