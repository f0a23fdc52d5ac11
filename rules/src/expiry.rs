//! When can a profile's result change with no new fact? Counted buckets leave `last N days`
//! windows (and future-dated ones enter), relative dates and datetimes slide past stored values.
//! tagging-svc schedules a re-evaluation for the day [`next_expiry`] returns.
//!
//! Method: collect every day on which a day-granular leaf (a window, a relative date) could
//! change, evaluate the whole condition on each of them in order and return the first whose
//! result differs. Datetime comparisons relative to `now` change at an instant, not at midnight:
//! their flip instants are mapped to the earliest tenant-local day they can fall on (allowing two
//! hours of time-zone offset change) and returned unchecked — early, never late. So are the
//! instants decay carries a score (`score.<model>`) across a bound of its leaf.

use std::collections::BTreeSet;

use chrono::{DateTime, Days, Duration, NaiveDate, Utc};

use proto::condition::{Condition, Literal, Operand, PropertyPredicate, ValueType, Window};

use crate::eval::{evaluate, EvalCtx};
use crate::expand::Expanded;
use crate::facts::{whole_seconds, EventFact, FactValue, Facts};
use crate::resolve::{behaviour_source, distinct_source, DistinctSource, Source};
use crate::score::score_model;

/// Candidate days evaluated before giving up and answering the next candidate.
const MAX_SIMULATED_DAYS: usize = 1000;

/// The earliest day after `ctx.today` on which the result of `condition` for `facts` could change
/// without any new fact; `None` when it cannot. Conservative: may be early, never late. When a
/// datetime comparison relative to now can flip before tomorrow, the answer is `ctx.today` itself
/// (re-evaluate later today, e.g. on an hourly sweep).
pub fn next_expiry(condition: &Expanded, facts: &dyn Facts, ctx: &EvalCtx) -> Option<NaiveDate> {
    let mut c = Candidates {
        ctx,
        days: BTreeSet::new(),
        instant_day: None,
    };
    c.node(condition.root(), facts);
    let current = evaluate(condition, facts, ctx);
    let mut change = None;
    for (i, day) in c.days.iter().enumerate() {
        let shifted = (*day - ctx.today).num_days();
        let shifted = Duration::try_days(shifted)
            .and_then(|k| ctx.now.checked_add_signed(k))
            .map(|now| EvalCtx { now, today: *day });
        let differs = match shifted {
            Some(at) if i < MAX_SIMULATED_DAYS => evaluate(condition, facts, &at) != current,
            _ => true,
        };
        if differs {
            change = Some(*day);
            break;
        }
    }
    [change, c.instant_day].into_iter().flatten().min()
}

struct Candidates<'a> {
    ctx: &'a EvalCtx,
    /// Days after today on which a day-granular leaf may change.
    days: BTreeSet<NaiveDate>,
    /// The earliest day a datetime flip may fall on.
    instant_day: Option<NaiveDate>,
}

impl Candidates<'_> {
    fn day(&mut self, d: Option<NaiveDate>) {
        if let Some(d) = d.filter(|d| *d > self.ctx.today) {
            self.days.insert(d);
        }
    }

    fn instant(&mut self, t: Option<DateTime<Utc>>) {
        let Some(t) = t.filter(|t| *t > self.ctx.now) else {
            return;
        };
        let margin = Duration::hours(2);
        let ahead = (t - self.ctx.now - margin).num_days().max(0);
        let day = u64::try_from(ahead)
            .ok()
            .and_then(|n| self.ctx.today.checked_add_days(Days::new(n)))
            .unwrap_or(self.ctx.today);
        self.instant_day = Some(self.instant_day.map_or(day, |d| d.min(day)));
    }

    fn node(&mut self, c: &Condition, facts: &dyn Facts) {
        match c {
            Condition::And { children } | Condition::Or { children } => {
                children.iter().for_each(|c| self.node(c, facts))
            }
            Condition::Not { child } => self.node(child, facts),
            Condition::Property(p) => {
                self.relative(p, facts.property(&p.key));
                self.decay(p, facts);
            }
            Condition::Behaviour(b) => {
                let last = match b.window {
                    Window::Last { days } => Some(u64::from(days.max(1))),
                    _ => None,
                };
                let bucket = |s: &mut Self, d: NaiveDate| {
                    if let Some(n) = last {
                        s.day(Some(d));
                        s.day(d.checked_add_days(Days::new(n)));
                    }
                };
                match behaviour_source(b, self.ctx.now, self.ctx.today) {
                    Source::Metric(m) => {
                        for (d, _) in facts.daily_counts(&m) {
                            bucket(self, d);
                        }
                    }
                    Source::Raw {
                        kind, content_tag, ..
                    } => {
                        let events = facts.events().iter().filter(|e: &&EventFact| {
                            kind.as_ref().is_none_or(|k| &e.kind == k)
                                && content_tag.as_ref().is_none_or(|t| e.has_content_tag(t))
                        });
                        for e in events {
                            bucket(self, e.day);
                            for f in &b.filters {
                                let values = e.props.get(&f.key).map(Vec::as_slice).unwrap_or(&[]);
                                self.relative(f, values);
                            }
                        }
                    }
                }
            }
            Condition::Distinct(d) => {
                let Window::Last { days } = d.window else {
                    return;
                };
                let n = u64::from(days.max(1));
                let bucket = |s: &mut Self, day: NaiveDate| {
                    s.day(Some(day));
                    s.day(day.checked_add_days(Days::new(n)));
                };
                match distinct_source(d) {
                    DistinctSource::Metrics(prefix) => {
                        for m in facts
                            .metrics()
                            .into_iter()
                            .filter(|m| m.starts_with(&prefix))
                        {
                            for (day, _) in facts.daily_counts(m) {
                                bucket(self, day);
                            }
                        }
                    }
                    DistinctSource::Values { kind, .. } => {
                        let events = facts
                            .events()
                            .iter()
                            .filter(|e| kind.as_ref().is_none_or(|k| &e.kind == k));
                        for e in events {
                            bucket(self, e.day);
                        }
                    }
                }
            }
            Condition::Tag(_) | Condition::Wechat(_) | Condition::Source(_) => {}
            Condition::Rule { .. } => {}
        }
    }

    /// The instants decay carries a score across one of `p`'s bounds.
    fn decay(&mut self, p: &PropertyPredicate, facts: &dyn Facts) {
        let Some(fold) = score_model(&p.key).and_then(|m| facts.score(m)) else {
            return;
        };
        let bounds: Vec<f64> = match &p.value {
            Some(Operand::One(Literal::Number(n))) => vec![*n],
            Some(Operand::List(ls)) => ls
                .iter()
                .filter_map(|l| match l {
                    Literal::Number(n) => Some(*n),
                    _ => None,
                })
                .collect(),
            _ => return,
        };
        for b in bounds {
            self.instant(fold.crossing(b, self.ctx.now));
        }
    }

    /// Days / instants where a relative bound of `p` passes one of `values`.
    fn relative(&mut self, p: &PropertyPredicate, values: &[FactValue]) {
        let lits: Vec<&Literal> = match &p.value {
            Some(Operand::One(l)) => vec![l],
            Some(Operand::List(ls)) => ls.iter().collect(),
            None => return,
        };
        for lit in lits {
            let Literal::Relative(r) = lit else { continue };
            let Some(shift) = Duration::try_days(r.days_ago) else {
                continue;
            };
            for v in values {
                match (p.value_type, v) {
                    // today' − N = v from day v + N; > v from day v + N + 1.
                    (ValueType::Date, FactValue::Date(d)) => {
                        let at = d.checked_add_signed(shift);
                        self.day(at);
                        self.day(at.and_then(|a| a.succ_opt()));
                    }
                    // now' − N days passes v at v + N days, and exceeds it one second later.
                    (ValueType::Datetime, FactValue::DateTime(t)) => {
                        let at =
                            whole_seconds(t.to_owned()).and_then(|t| t.checked_add_signed(shift));
                        self.instant(at);
                        self.instant(at.and_then(|a| a.checked_add_signed(Duration::seconds(1))));
                    }
                    _ => {}
                }
            }
        }
    }
}
