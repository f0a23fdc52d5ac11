//! Time as a service sees it: everything that depends on "now" reads a [`Clock`], the system's in
//! production and a [`ManualClock`] a test moves by hand instead of sleeping. [`WholeSeconds`]
//! gives a clock's time without its fraction of a second, for a service whose databases store
//! whole seconds.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, SubsecRound, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// A clock shared by the parts of a service.
pub type SharedClock = Arc<dyn Clock>;

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until a test moves it. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Arc::new(Mutex::new(at)))
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `C`'s time without its fraction of a second.
#[derive(Debug, Clone)]
pub struct WholeSeconds<C>(pub C);

impl<C: Clock> Clock for WholeSeconds<C> {
    fn now(&self) -> DateTime<Utc> {
        whole(self.0.now())
    }
}

/// `t` without its fraction of a second.
pub fn whole(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_and_its_clones_share_it() {
        let start: DateTime<Utc> = "2026-01-01T00:00:00.750Z".parse().unwrap();
        let c = ManualClock::new(start);
        let shared: SharedClock = Arc::new(c.clone());
        c.advance(Duration::hours(25));
        assert_eq!(shared.now(), start + Duration::hours(25));
        c.set(start);
        assert_eq!(WholeSeconds(shared).now(), whole(start));
        assert_eq!(WholeSeconds(SystemClock).now().timestamp_subsec_nanos(), 0);
    }
}
