//! Decay of a dimension's points, exact at any instant, and the fold that lets a score be read
//! without summing its ledger.
//!
//! An event entry of `delta` points earned at `t` is worth `delta × factor(now − t)`:
//! - `none`: 1;
//! - `half_life {days, expire_days?}`: `0.5^(age / days)`, and 0 from `expire_days` on;
//! - `steps {steps: [{after_days, factor}]}`: 1 until the first step, then the factor of the last
//!   step reached (0 = expired).
//!
//! State entries (held while a condition matches) and manual adjustments do not decay.
//!
//! A [`Fold`] is the score at one instant split into the part that does not decay (`held`) and the
//! part that does (`decaying`, already decayed to `at`). Between two step boundaries a half-life
//! fold carries forward exactly by one multiplication (`0.5^(Δ / h)`) and a step fold does not
//! change, so `valid_until` (the next boundary of any entry) is when the fold must be rebuilt
//! from the ledger. A read is exact at any instant: carried when valid, rebuilt otherwise.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::DefError;

const DAY: f64 = 86_400.0;

/// How a dimension's event points lose value with age.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Decay {
    /// Points keep their value.
    #[default]
    None,
    /// Points halve every `days`; with `expire_days` they are worth nothing from then on.
    HalfLife {
        days: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expire_days: Option<u32>,
    },
    /// Points are worth `factor` of their value from `after_days` on (steps in increasing order;
    /// a factor of 0 expires them).
    Steps { steps: Vec<Step> },
}

/// One step of a step decay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub after_days: u32,
    pub factor: f64,
}

fn secs(d: u32) -> i64 {
    i64::from(d) * 86_400
}

impl Decay {
    /// The half-life in days, for a continuous decay (the others change only at boundaries).
    pub fn half_life_days(&self) -> Option<f64> {
        match self {
            Decay::HalfLife { days, .. } => Some(*days),
            Decay::None | Decay::Steps { .. } => None,
        }
    }

    /// Checks the parameters; errors name the field under `path`.
    pub fn validate(&self, path: &str, errors: &mut Vec<DefError>) {
        match self {
            Decay::None => {}
            Decay::HalfLife { days, expire_days } => {
                if !(days.is_finite() && (1.0..=3650.0).contains(days)) {
                    errors.push(DefError::new(
                        format!("{path}.days"),
                        "out_of_range",
                        "a half-life must be 1..=3650 days",
                    ));
                }
                if expire_days.is_some_and(|e| !(1..=36_500).contains(&e)) {
                    errors.push(DefError::new(
                        format!("{path}.expire_days"),
                        "out_of_range",
                        "must be 1..=36500 days",
                    ));
                }
            }
            Decay::Steps { steps } => {
                if steps.is_empty() || steps.len() > 20 {
                    errors.push(DefError::new(
                        format!("{path}.steps"),
                        "out_of_range",
                        "must have 1..=20 steps",
                    ));
                }
                let mut prev: Option<u32> = None;
                for (i, s) in steps.iter().enumerate() {
                    let p = format!("{path}.steps[{i}]");
                    if !(1..=36_500).contains(&s.after_days)
                        || prev.is_some_and(|p| s.after_days <= p)
                    {
                        errors.push(DefError::new(
                            format!("{p}.after_days"),
                            "out_of_range",
                            "must be 1..=36500 and greater than the previous step's",
                        ));
                    }
                    if !(s.factor.is_finite() && (0.0..=1.0).contains(&s.factor)) {
                        errors.push(DefError::new(
                            format!("{p}.factor"),
                            "out_of_range",
                            "must be between 0 and 1",
                        ));
                    }
                    prev = Some(s.after_days);
                }
            }
        }
    }

    /// Is the value continuous in time (half-life)?
    pub fn continuous(&self) -> bool {
        matches!(self, Decay::HalfLife { .. })
    }

    /// The worth of one point `age_secs` after it was earned (negative ages count as 0).
    pub fn factor(&self, age_secs: i64) -> f64 {
        let age = age_secs.max(0);
        match self {
            Decay::None => 1.0,
            Decay::HalfLife { days, expire_days } => {
                if expire_days.is_some_and(|e| age >= secs(e)) {
                    0.0
                } else {
                    (-(age as f64) / (days * DAY)).exp2()
                }
            }
            Decay::Steps { steps } => steps
                .iter()
                .take_while(|s| secs(s.after_days) <= age)
                .last()
                .map_or(1.0, |s| s.factor),
        }
    }

    /// How long after it was earned an entry is worth nothing (and can be left out of sums).
    pub fn expires_after(&self) -> Option<Duration> {
        match self {
            Decay::None => None,
            Decay::HalfLife { expire_days, .. } => expire_days.map(|d| Duration::seconds(secs(d))),
            Decay::Steps { steps } => steps
                .iter()
                .find(|s| s.factor == 0.0)
                .map(|s| Duration::seconds(secs(s.after_days))),
        }
    }

    /// The first instant after `now` at which an entry earned at `earned` changes value by a
    /// jump (a step or its expiry).
    pub fn next_boundary(
        &self,
        earned: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let after = |d: u32| Some(earned + Duration::seconds(secs(d))).filter(|t| *t > now);
        match self {
            Decay::None => None,
            Decay::HalfLife { expire_days, .. } => expire_days.and_then(after),
            Decay::Steps { steps } => steps.iter().find_map(|s| after(s.after_days)),
        }
    }

    /// The multiplier carrying decayed value `dt_secs` forward between two boundaries.
    pub fn carry(&self, dt_secs: i64) -> f64 {
        match self {
            Decay::HalfLife { days, .. } => (-(dt_secs.max(0) as f64) / (days * DAY)).exp2(),
            _ => 1.0,
        }
    }

    /// The era of the leaderboard key (see [`ERA_HALF_LIVES`]) that instant `t` falls in, for a
    /// model started at `epoch`; always 0 without a half-life.
    pub fn era(&self, epoch: DateTime<Utc>, t: DateTime<Utc>) -> i64 {
        match self {
            Decay::HalfLife { days, .. } => {
                let len = days * DAY * ERA_HALF_LIVES;
                ((t - epoch).num_seconds() as f64 / len).floor() as i64
            }
            _ => 0,
        }
    }

    /// Half-lives from the start of `era` to `t`.
    fn half_lives_into_era(&self, epoch: DateTime<Utc>, era: i64, t: DateTime<Utc>) -> f64 {
        match self {
            Decay::HalfLife { days, .. } => {
                (t - epoch).num_seconds() as f64 / (days * DAY) - era as f64 * ERA_HALF_LIVES
            }
            _ => 0.0,
        }
    }

    /// What keys of `era` are multiplied by at `now` to give the decayed part of the score:
    /// `2^−(now − start of era)/h` (1 without a half-life).
    pub fn era_carry(&self, epoch: DateTime<Utc>, era: i64, now: DateTime<Utc>) -> f64 {
        match self {
            Decay::HalfLife { .. } => (-self.half_lives_into_era(epoch, era, now)).exp2(),
            _ => 1.0,
        }
    }
}

/// Half-lives in one era of the leaderboard's sort key. A fold's key is its decaying part
/// carried back to the start of the era of its fold time (`decaying × 2^(at − era start)/h`,
/// never more than 2^128 times its value, however old the model); the board compares keys of
/// the current and the previous era (and the next, against clock skew) with each era's own
/// carry, and counts an older fold by what it holds: its decaying part is down to 2^−128 of
/// what it was.
pub const ERA_HALF_LIVES: f64 = 128.0;

/// One ledger entry as far as the score is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Worth {
    pub delta: f64,
    pub earned: DateTime<Utc>,
    /// Event points decay; state points and adjustments do not.
    pub decays: bool,
}

/// A score at `at`: `held + decaying`, valid (carried by [`Decay::carry`]) until `valid_until`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fold {
    pub held: f64,
    pub decaying: f64,
    pub at: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
}

impl Fold {
    /// A score of zero.
    pub fn zero(at: DateTime<Utc>) -> Self {
        Fold {
            held: 0.0,
            decaying: 0.0,
            at,
            valid_until: None,
        }
    }

    /// The fold of `entries` at `now`.
    pub fn of<'a>(
        decay: &Decay,
        entries: impl IntoIterator<Item = &'a Worth>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut f = Fold::zero(now);
        for e in entries {
            f.add(decay, e);
        }
        f
    }

    /// Adds one entry (the fold must be at `now` = `self.at`).
    pub fn add(&mut self, decay: &Decay, e: &Worth) {
        if e.decays {
            self.decaying += e.delta * decay.factor((self.at - e.earned).num_seconds());
            if let Some(b) = decay.next_boundary(e.earned, self.at) {
                self.valid_until = Some(self.valid_until.map_or(b, |v| v.min(b)));
            }
        } else {
            self.held += e.delta;
        }
    }

    /// The score now.
    pub fn value(&self) -> f64 {
        self.held + self.decaying
    }

    /// This fold carried to `t`, `None` when a boundary lies in between (rebuild it then).
    pub fn carried(&self, decay: &Decay, t: DateTime<Utc>) -> Option<Fold> {
        if self.valid_until.is_some_and(|v| v <= t) {
            return None;
        }
        Some(Fold {
            held: self.held,
            decaying: self.decaying * decay.carry((t - self.at).num_seconds()),
            at: t.max(self.at),
            valid_until: self.valid_until,
        })
    }

    /// The sort key of the leaderboard, `(era, norm)`: `held + norm × era_carry(era, now)` is
    /// the exact score at `now` for every row of one model, whenever each was folded.
    pub fn norm(&self, decay: &Decay, epoch: DateTime<Utc>) -> (i64, f64) {
        let era = decay.era(epoch, self.at);
        let k = decay.half_lives_into_era(epoch, era, self.at);
        (era, self.decaying * k.exp2())
    }

    /// When the score crosses `threshold` by decay alone, if it will before `valid_until` (the
    /// instant rounded up, plus a second so the crossing has happened when it is looked at).
    pub fn crossing(&self, decay: &Decay, threshold: f64) -> Option<DateTime<Utc>> {
        let Decay::HalfLife { days, .. } = decay else {
            return None;
        };
        if self.decaying == 0.0 {
            return None;
        }
        let r = (threshold - self.held) / self.decaying;
        if !(r > 0.0 && r < 1.0) {
            return None;
        }
        let dt = -(days * DAY) * r.log2();
        if !dt.is_finite() || dt > 1e11 {
            return None;
        }
        let t = self.at + Duration::seconds(dt.ceil() as i64 + 1);
        match self.valid_until {
            Some(v) if v <= t => None,
            _ => Some(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn days(n: i64) -> Duration {
        Duration::days(n)
    }

    #[test]
    fn factors() {
        let h = Decay::HalfLife {
            days: 30.0,
            expire_days: Some(90),
        };
        assert_eq!(h.factor(0), 1.0);
        assert!((h.factor(30 * 86_400) - 0.5).abs() < 1e-12);
        assert!((h.factor(60 * 86_400) - 0.25).abs() < 1e-12);
        assert_eq!(h.factor(90 * 86_400), 0.0);
        assert_eq!(h.factor(-5), 1.0);
        let s = Decay::Steps {
            steps: vec![
                Step {
                    after_days: 30,
                    factor: 0.5,
                },
                Step {
                    after_days: 90,
                    factor: 0.0,
                },
            ],
        };
        assert_eq!(s.factor(29 * 86_400), 1.0);
        assert_eq!(s.factor(30 * 86_400), 0.5);
        assert_eq!(s.factor(90 * 86_400), 0.0);
        assert_eq!(s.expires_after(), Some(days(90)));
        assert_eq!(s.next_boundary(t0(), t0() + days(1)), Some(t0() + days(30)));
        assert_eq!(
            s.next_boundary(t0(), t0() + days(30)),
            Some(t0() + days(90))
        );
        assert_eq!(s.next_boundary(t0(), t0() + days(91)), None);
    }

    #[test]
    fn a_carried_fold_equals_the_sum_and_boundaries_invalidate_it() {
        let h = Decay::HalfLife {
            days: 10.0,
            expire_days: Some(40),
        };
        let entries = [
            Worth {
                delta: 10.0,
                earned: t0(),
                decays: true,
            },
            Worth {
                delta: -4.0,
                earned: t0() + days(3),
                decays: true,
            },
            Worth {
                delta: 7.0,
                earned: t0(),
                decays: false,
            },
        ];
        let f = Fold::of(&h, &entries, t0() + days(5));
        assert_eq!(f.valid_until, Some(t0() + days(40)));
        let later = t0() + days(17);
        let direct = Fold::of(&h, &entries, later).value();
        let carried = f.carried(&h, later).unwrap().value();
        assert!((direct - carried).abs() < 1e-9, "{direct} vs {carried}");
        assert!(f.carried(&h, t0() + days(40)).is_none());
        let after = Fold::of(&h, &entries, t0() + days(50));
        assert!(
            (after.value() - 7.0).abs() < 1e-12,
            "expired entries are gone"
        );
    }

    #[test]
    fn predicted_crossings_are_just_after_the_crossing() {
        let h = Decay::HalfLife {
            days: 10.0,
            expire_days: None,
        };
        let f = Fold {
            held: 5.0,
            decaying: 100.0,
            at: t0(),
            valid_until: None,
        };
        let t = f.crossing(&h, 55.0).unwrap();
        // 5 + 100 × 0.5^(Δ/10d) = 55 ⇒ Δ = 10 days.
        assert_eq!(t, t0() + days(10) + Duration::seconds(1));
        let at = f.carried(&h, t).unwrap().value();
        assert!(at < 55.0 && at > 54.99, "{at}");
        assert_eq!(f.crossing(&h, 200.0), None);
        assert_eq!(f.crossing(&h, 2.0), None, "never below what is held");
        assert_eq!(f.crossing(&Decay::None, 50.0), None);
    }

    #[test]
    fn norms_order_like_exact_scores() {
        let h = Decay::HalfLife {
            days: 7.0,
            expire_days: None,
        };
        let epoch = t0();
        let a = Fold {
            held: 0.0,
            decaying: 80.0,
            at: t0() + days(1),
            valid_until: None,
        };
        let b = Fold {
            held: 0.0,
            decaying: 60.0,
            at: t0() + days(4),
            valid_until: None,
        };
        let now = t0() + days(9);
        let key = |f: &Fold| {
            let (era, norm) = f.norm(&h, epoch);
            norm * h.era_carry(epoch, era, now)
        };
        let (va, vb) = (
            a.carried(&h, now).unwrap().value(),
            b.carried(&h, now).unwrap().value(),
        );
        assert!((key(&a) - va).abs() < 1e-9 && (key(&b) - vb).abs() < 1e-9);
    }

    /// Keys stay finite and exact however many half-lives the model has run: a 1-day half-life
    /// 50 years on (18 000 half-lives; one key relative to the model's start would overflow
    /// after ~1 000), and across an era boundary.
    #[test]
    fn keys_stay_exact_however_old_the_model() {
        let h = Decay::HalfLife {
            days: 1.0,
            expire_days: None,
        };
        let epoch = t0();
        let boundary = epoch + days(128 * 140);
        for (at, now) in [
            (epoch + days(365 * 50), epoch + days(365 * 50) + days(3)),
            (boundary - days(2), boundary + days(1)),
        ] {
            let f = Fold {
                held: 5.0,
                decaying: 80.0,
                at,
                valid_until: None,
            };
            let (era, norm) = f.norm(&h, epoch);
            assert!(
                norm.is_finite() && norm.abs() <= 80.0 * 2f64.powi(128),
                "{norm}"
            );
            let key = f.held + norm * h.era_carry(epoch, era, now);
            let exact = f.carried(&h, now).unwrap().value();
            assert!((key - exact).abs() < 1e-9, "{key} vs {exact}");
            assert!(h.era(epoch, now) - era <= 1);
        }
    }
}
