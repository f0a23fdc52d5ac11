//! Time as a service sees it: everything that depends on "now" reads a [`Clock`], the system's in
//! production and a [`ManualClock`] a test moves by hand instead of sleeping. [`WholeSeconds`]
//! gives a clock's time without its fraction of a second, for a service whose databases store
//! whole seconds. [`TimeZones`] says in which IANA time zone each tenant's days begin
//! (per-day caps, behaviour days, windows and their midnight exits).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Duration, NaiveDate, SubsecRound, TimeZone, Utc};
pub use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::config::{key, ConfigError, Validate};

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

/// The zone tenants live in, by IANA name (`Asia/Shanghai`, `Europe/Berlin`): one for all and
/// the tenants elsewhere, as configured, and over them the zones tenants' operators set since
/// (announced on the bus, [`TimeZones::announce`]). Daylight saving is the zone's own.
///
/// Clones share what was announced, so every part of a service holding its configuration sees
/// a new zone at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeZones {
    /// Every tenant's zone unless `tenants` names another (China Standard Time by default).
    #[serde(default = "default_zone")]
    pub default: String,
    /// Tenants in another zone: tenant id → IANA zone name.
    #[serde(default)]
    pub tenants: BTreeMap<String, String>,
    /// Zones set for tenants since the start, tenant id → zone: they win over the configured.
    #[serde(skip)]
    announced: Arc<RwLock<HashMap<String, Tz>>>,
}

/// Configurations are equal on what they configure.
impl PartialEq for TimeZones {
    fn eq(&self, other: &Self) -> bool {
        self.default == other.default && self.tenants == other.tenants
    }
}

impl Eq for TimeZones {}

fn default_zone() -> String {
    "Asia/Shanghai".into()
}

impl Default for TimeZones {
    fn default() -> Self {
        TimeZones {
            default: default_zone(),
            tenants: BTreeMap::new(),
            announced: Arc::default(),
        }
    }
}

impl TimeZones {
    /// The zone of `tenant` (names are checked when the configuration is loaded; one that is
    /// not a zone counts as China Standard Time).
    pub fn of(&self, tenant: &str) -> Tz {
        let announced = self.announced.read().unwrap_or_else(|p| p.into_inner());
        if let Some(z) = announced.get(tenant) {
            return *z;
        }
        let name = self.tenants.get(tenant).unwrap_or(&self.default);
        name.parse().unwrap_or(chrono_tz::Asia::Shanghai)
    }

    /// From now on `tenant` counts its days in `zone` (its operators set it).
    pub fn announce(&self, tenant: &str, zone: Tz) {
        self.announced
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_string(), zone);
    }
}

impl Validate for TimeZones {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let bad = |k: String, name: &str| {
            ConfigError::invalid(k, format!("`{name}` is not an IANA time zone name"))
        };
        self.default
            .parse::<Tz>()
            .map_err(|_| bad(key(prefix, "default"), &self.default))?;
        for (tenant, name) in &self.tenants {
            name.parse::<Tz>()
                .map_err(|_| bad(key(&key(prefix, "tenants"), tenant), name))?;
        }
        Ok(())
    }
}

/// The day `at` falls on in `zone`.
pub fn local_day(at: DateTime<Utc>, zone: Tz) -> NaiveDate {
    at.with_timezone(&zone).date_naive()
}

/// When `day` begins in `zone`, in UTC: its midnight, or the first moment of the day where a
/// change of clocks skips midnight.
pub fn local_midnight(day: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let mut t = day.and_hms_opt(0, 0, 0).expect("midnight");
    // A gap is at most a few hours; walk to its end.
    for _ in 0..(24 * 4) {
        if let Some(at) = zone.from_local_datetime(&t).earliest() {
            return at.with_timezone(&Utc);
        }
        t += Duration::minutes(15);
    }
    day.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
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

    #[test]
    fn days_begin_at_the_zones_midnight_also_when_clocks_change() {
        let shanghai: Tz = "Asia/Shanghai".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        assert_eq!(
            local_midnight(d, shanghai).to_rfc3339(),
            "2026-03-30T16:00:00+00:00"
        );
        let at: DateTime<Utc> = "2026-03-30T16:00:00Z".parse().unwrap();
        assert_eq!(local_day(at, shanghai), d);
        assert_eq!(
            local_day(at - Duration::seconds(1), shanghai),
            d.pred_opt().unwrap()
        );
        // Berlin: winter +1, summer +2 (clocks went forward on 29 March 2026).
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let winter = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let summer = NaiveDate::from_ymd_opt(2026, 3, 30).unwrap();
        assert_eq!(
            local_midnight(winter, berlin).to_rfc3339(),
            "2026-02-28T23:00:00+00:00"
        );
        assert_eq!(
            local_midnight(summer, berlin).to_rfc3339(),
            "2026-03-29T22:00:00+00:00"
        );
        // Santiago's clocks skip midnight (00:00 → 01:00) on the first Sunday of September.
        let santiago: Tz = "America/Santiago".parse().unwrap();
        let skipped = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
        let begins = local_midnight(skipped, santiago);
        assert_eq!(local_day(begins, santiago), skipped);
        assert_eq!(
            local_day(begins - Duration::seconds(1), santiago),
            skipped.pred_opt().unwrap()
        );
    }

    #[test]
    fn zones_are_checked_by_name_and_per_tenant() {
        let mut z = TimeZones::default();
        z.tenants.insert("t-eu".into(), "Europe/Berlin".into());
        assert!(z.validate("scoring.time_zones").is_ok());
        assert_eq!(z.of("t-eu"), chrono_tz::Europe::Berlin);
        assert_eq!(z.of("t-cn"), chrono_tz::Asia::Shanghai);
        z.tenants.insert("t-x".into(), "UTC+8".into());
        let e = z.validate("scoring.time_zones").unwrap_err().to_string();
        assert!(e.contains("scoring.time_zones.tenants.t-x"), "{e}");
    }

    #[test]
    fn an_announced_zone_wins_in_every_clone() {
        let mut z = TimeZones::default();
        z.tenants.insert("t-eu".into(), "Europe/Berlin".into());
        let copy = z.clone();
        z.announce("t-eu", chrono_tz::America::Santiago);
        z.announce("t-new", chrono_tz::Europe::London);
        assert_eq!(copy.of("t-eu"), chrono_tz::America::Santiago);
        assert_eq!(copy.of("t-new"), chrono_tz::Europe::London);
        assert_eq!(copy.of("t-cn"), chrono_tz::Asia::Shanghai);
        // Configurations compare on what they configure.
        assert_eq!(
            copy,
            TimeZones {
                tenants: z.tenants.clone(),
                ..TimeZones::default()
            }
        );
    }
}
