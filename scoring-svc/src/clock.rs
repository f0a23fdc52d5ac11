//! Time as the service sees it. Everything that depends on "now" (decay, SLA due times,
//! inactivity, time-driven conditions, the scheduler) reads the [`Clock`] the [`Scorer`] holds,
//! so tests move time instead of sleeping. Times are handled in whole seconds (what the databases
//! store): the scorer reads any clock it is given through [`WholeSeconds`].
//!
//! [`Scorer`]: crate::store::Scorer

pub use platform::clock::{whole, Clock, ManualClock, SharedClock, SystemClock, WholeSeconds};
