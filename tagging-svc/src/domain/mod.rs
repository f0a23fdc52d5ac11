//! Pure tagging logic, no I/O: the time of an evaluation ([`At`]), a rule and the tags it sets as
//! settling sees them ([`rule`]), a profile's memberships followed in memory by the rules the
//! store keeps them by ([`holdings`]), and rule settling ([`settle`]): which rules match the
//! profile's facts, what each does to its membership, when windowed and time-relative rules must
//! be looked at again, and the chained rules that follow, round by round up to a bound; the
//! real-time saved segments the settled profile enters or leaves ([`segment`]); and what
//! an analytics request asks and how its answer is shaped ([`analytics`], over time
//! [`analytics_time`]). The store loads, lets these decide, then writes what was decided.

pub mod analytics;
pub mod analytics_time;
pub mod holdings;
pub mod persona;
pub mod rule;
pub mod segment;
pub mod settle;

use chrono::{DateTime, NaiveDate, Utc};
use rules::EvalCtx;

pub use holdings::Holdings;
pub use rule::{Mode, RuleEntry, RuleSet, Tag};

/// The time of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub now: DateTime<Utc>,
    /// Today in the tenant's time zone.
    pub today: NaiveDate,
    /// The tenant's time zone.
    pub zone: crate::clock::Tz,
}

impl At {
    /// The time as conditions read it.
    pub fn eval(&self) -> EvalCtx {
        EvalCtx {
            now: self.now,
            today: self.today,
        }
    }
}
