//! What a change to one profile announces when it ends, decided without I/O: per model, whether
//! its fold is saved and the `lead.score_changed` it publishes (a change the work made is
//! announced from the score when the work opened, with the work's cause; a fold rebuilt or
//! carried across a threshold by decay alone is announced from the stored score as `decay`); and
//! when the lead must be looked at again (a decay boundary, a predicted threshold crossing, an
//! inactivity deadline or a time-driven condition).

use chrono::{DateTime, Utc};
use platform::clock::Tz;
use proto::scoring::ScoreCause;
use rules::EvalCtx;

use super::compiled::Compiled;
use super::decay::Fold;
use super::settle::{LeadState, EPS};
use super::stages::LeadView;
use super::view::{self, LeadProps};

/// What the work knows of one model when it ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelEnd {
    /// The score now.
    pub new: f64,
    /// The score when the work opened (carried to now).
    pub before: f64,
    /// The stored fold's value at its own instant, if one was stored.
    pub stored: Option<f64>,
    /// Entries were written (or moved) by the work.
    pub touched: bool,
    /// The fold was rebuilt when the work opened (a decay boundary passed).
    pub rebuilt: bool,
    /// The fold changed and must be saved.
    pub dirty: bool,
}

/// What to write and announce for one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreEnd {
    /// Save the fold.
    pub save: bool,
    /// Publish `lead.score_changed` from this old score, for this cause.
    pub announce: Option<(f64, ScoreCause)>,
}

/// The end of model `m`, whose conditions and triggers compare with `thresholds`, for a work
/// caused by `cause`.
pub fn score_end(m: &ModelEnd, thresholds: &[f64], cause: ScoreCause) -> ScoreEnd {
    let crossed_by_decay = m
        .stored
        .is_some_and(|old| thresholds.iter().any(|t| (old >= *t) != (m.new >= *t)));
    let changed = |old: f64| ((m.new - old).abs() > EPS).then_some(old);
    if m.touched {
        ScoreEnd {
            save: m.dirty,
            announce: changed(m.before).map(|old| (old, cause)),
        }
    } else if m.rebuilt || crossed_by_decay {
        let old = m.stored.unwrap_or(0.0);
        ScoreEnd {
            save: true,
            announce: changed(old).map(|old| (old, ScoreCause::Decay)),
        }
    } else {
        ScoreEnd {
            save: m.dirty,
            announce: None,
        }
    }
}

/// When the lead must be looked at again, seen with `facts` (the lead properties are set on them
/// here).
pub fn next_check(
    defs: &Compiled,
    folds: &[Fold],
    lead: &LeadState,
    facts: &mut rules::ProfileFacts,
    ctx: &EvalCtx,
    zone: Tz,
) -> Option<DateTime<Utc>> {
    let mut due: Option<DateTime<Utc>> = None;
    let mut at = |t: DateTime<Utc>| due = Some(due.map_or(t, |d| d.min(t)));
    for (i, m) in defs.models.iter().enumerate() {
        let f = &folds[i];
        if let Some(v) = f.valid_until {
            at(v);
        }
        for t in &defs.thresholds[i] {
            if let Some(c) = f.crossing(&m.decay, *t) {
                at(c);
            }
        }
    }
    let props = LeadProps {
        scores: defs
            .models
            .iter()
            .zip(folds)
            .map(|(m, f)| (m.key.clone(), f.value()))
            .collect(),
        stage: Some(lead.stage.clone()),
        stage_entered_at: Some(lead.stage_entered_at),
        last_activity_at: lead.last_activity_at,
        owner: lead.owner.as_ref().map(|o| o.user_id.clone()),
    };
    view::apply(facts, &props);
    let v = LeadView {
        stage: &lead.stage,
        entered_at: lead.stage_entered_at,
        last_activity: lead.last_activity_at,
        facts,
        ctx,
    };
    if let Some(t) = defs.machine.next_time_check(&v, zone) {
        at(t);
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(new: f64, before: f64, stored: Option<f64>) -> ModelEnd {
        ModelEnd {
            new,
            before,
            stored,
            touched: false,
            rebuilt: false,
            dirty: false,
        }
    }

    #[test]
    fn a_change_the_work_made_is_announced_with_its_cause() {
        let m = ModelEnd {
            touched: true,
            dirty: true,
            ..end(30.0, 20.0, Some(21.0))
        };
        let e = score_end(&m, &[], ScoreCause::Event);
        assert!(e.save);
        assert_eq!(e.announce, Some((20.0, ScoreCause::Event)));
        // Written, but back where it was: saved, not announced.
        let m = ModelEnd {
            touched: true,
            dirty: true,
            ..end(20.0, 20.0, Some(21.0))
        };
        assert_eq!(score_end(&m, &[], ScoreCause::State).announce, None);
    }

    #[test]
    fn decay_is_announced_from_the_stored_score_when_it_matters() {
        // Carried below a threshold by decay alone.
        let m = end(45.0, 45.0, Some(55.0));
        let e = score_end(&m, &[50.0], ScoreCause::Event);
        assert_eq!(
            (e.save, e.announce),
            (true, Some((55.0, ScoreCause::Decay)))
        );
        // Decayed, but no threshold passed and not rebuilt: nothing.
        let e = score_end(&m, &[40.0], ScoreCause::Event);
        assert_eq!((e.save, e.announce), (false, None));
        // Rebuilt at a boundary: saved and announced.
        let m = ModelEnd {
            rebuilt: true,
            dirty: true,
            ..end(45.0, 45.0, Some(55.0))
        };
        let e = score_end(&m, &[], ScoreCause::Event);
        assert_eq!(
            (e.save, e.announce),
            (true, Some((55.0, ScoreCause::Decay)))
        );
    }
}
