//! Time as the service sees it. Everything that depends on "now" (decay, SLA due times,
//! inactivity, time-driven conditions, the scheduler) reads a [`Clock`], so tests move time
//! instead of sleeping. Times are handled in whole seconds (what the databases store).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, SubsecRound, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now, in whole seconds.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(0)
    }
}

/// A clock tests set and advance by hand. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start.trunc_subsecs(0))),
        }
    }

    /// Moves time forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut n = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *n += by;
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = to.trunc_subsecs(0);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// `t` without its fraction of a second.
pub fn whole(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_and_clones_share_it() {
        let start: DateTime<Utc> = "2026-01-01T00:00:00.750Z".parse().unwrap();
        let c = ManualClock::new(start);
        let c2 = c.clone();
        assert_eq!(c.now(), whole(start));
        c.advance(Duration::hours(25));
        assert_eq!(c2.now(), whole(start) + Duration::hours(25));
        assert_eq!(SystemClock.now().timestamp_subsec_nanos(), 0);
    }
}
