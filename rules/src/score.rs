//! What scoring-svc says about a lead, as facts a condition can read: `score.<model>` (a number
//! that may decay with time), `lead.stage` and `lead.stage_entered_at` (ordinary properties).
//!
//! A score is held as a [`ScoreFold`]: the part that keeps its value (`held`), the part that
//! decays (`decaying`, as of `at`) and the decay rate. Its value at any instant is
//! `held + decaying × 0.5^((now − at) × rate)` — computed the same way, in the same order of
//! operations, by the evaluator ([`ScoreFold::value_at`]) and by the compiled SQL, so both agree
//! to the bit. `rate` is half-lives per second (0 for a score that does not decay between two
//! published changes).

use chrono::{DateTime, Duration, Utc};

/// Prefix of the score properties: `score.engagement` is the score of the model keyed
/// `engagement`.
pub const SCORE_PREFIX: &str = "score.";

/// Prefix of the lead-state properties scoring publishes (`lead.stage`,
/// `lead.stage_entered_at`).
pub const LEAD_PREFIX: &str = "lead.";

/// Property key of a lead's stage (a string).
pub const LEAD_STAGE_KEY: &str = "lead.stage";

/// Property key of when the lead entered its stage (a datetime).
pub const LEAD_STAGE_ENTERED_KEY: &str = "lead.stage_entered_at";

/// Seconds in a day.
const DAY_SECONDS: f64 = 86_400.0;

/// The model a property key names (`score.engagement` → `engagement`).
pub fn score_model(key: &str) -> Option<&str> {
    key.strip_prefix(SCORE_PREFIX).filter(|m| !m.is_empty())
}

/// A score that changes with time only by decay (see the module header).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreFold {
    pub held: f64,
    pub decaying: f64,
    /// Unix seconds of the instant `decaying` is as of.
    pub at: i64,
    /// Half-lives per second; 0 when the score does not decay.
    pub rate: f64,
}

impl ScoreFold {
    /// A fold of `held + decaying` at `at`, halving the decaying part every `half_life_days`.
    pub fn new(held: f64, decaying: f64, at: DateTime<Utc>, half_life_days: Option<f64>) -> Self {
        let rate = half_life_days
            .filter(|d| d.is_finite() && *d > 0.0)
            .map_or(0.0, |d| 1.0 / (d * DAY_SECONDS));
        ScoreFold {
            held,
            decaying,
            at: at.timestamp(),
            rate,
        }
    }

    /// A score that keeps `value`.
    pub fn constant(value: f64, at: DateTime<Utc>) -> Self {
        ScoreFold::new(value, 0.0, at, None)
    }

    /// The score at `now` (whole seconds; never decayed "backwards" before `at`).
    pub fn value_at(&self, now: DateTime<Utc>) -> f64 {
        let elapsed = now.timestamp().saturating_sub(self.at).max(0);
        self.held + self.decaying * 0.5f64.powf(elapsed as f64 * self.rate)
    }

    /// When, after `now`, decay alone carries the score across `threshold` (early by up to a
    /// second, never late); `None` when it never does.
    pub fn crossing(&self, threshold: f64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.rate <= 0.0 || self.decaying == 0.0 {
            return None;
        }
        let r = (threshold - self.held) / self.decaying;
        if !(r > 0.0 && r < 1.0) {
            return None;
        }
        let secs = -r.log2() / self.rate;
        if !secs.is_finite() || secs > 1e11 {
            return None;
        }
        let t = DateTime::from_timestamp(self.at, 0)?
            .checked_add_signed(Duration::seconds(secs.floor() as i64))?;
        (t > now).then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_half_life_halves_the_decaying_part() {
        let f = ScoreFold::new(10.0, 80.0, t("2026-01-01T00:00:00Z"), Some(10.0));
        assert_eq!(f.value_at(t("2026-01-01T00:00:00Z")), 90.0);
        assert_eq!(f.value_at(t("2026-01-11T00:00:00Z")), 50.0);
        assert_eq!(f.value_at(t("2026-01-21T00:00:00Z")), 30.0);
        // Never before the fold's instant.
        assert_eq!(f.value_at(t("2025-12-01T00:00:00Z")), 90.0);
        let c = ScoreFold::constant(42.0, t("2026-01-01T00:00:00Z"));
        assert_eq!(c.value_at(t("2030-01-01T00:00:00Z")), 42.0);
    }

    #[test]
    fn crossings_are_predicted_early_never_late() {
        let now = t("2026-01-01T00:00:00Z");
        let f = ScoreFold::new(10.0, 80.0, now, Some(10.0));
        let c = f.crossing(50.0, now).unwrap();
        assert!(c <= t("2026-01-11T00:00:00Z") && c >= t("2026-01-10T23:59:58Z"));
        assert!(f.value_at(c) >= 50.0 - 1e-9);
        assert!(f.value_at(c + Duration::seconds(2)) < 50.0);
        // Below what it decays to, above where it is, or not decaying: never.
        assert_eq!(f.crossing(5.0, now), None);
        assert_eq!(f.crossing(95.0, now), None);
        assert_eq!(ScoreFold::constant(90.0, now).crossing(50.0, now), None);
        // A negative decaying part rises towards `held`.
        let g = ScoreFold::new(0.0, -40.0, now, Some(1.0));
        assert!(g.crossing(-20.0, now).is_some());
    }

    #[test]
    fn model_of_a_key() {
        assert_eq!(score_model("score.engagement"), Some("engagement"));
        assert_eq!(score_model("score."), None);
        assert_eq!(score_model("lead.stage"), None);
    }
}
