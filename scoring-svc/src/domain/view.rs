//! The facts a condition is evaluated on: the profile's facts from the projection, plus what only
//! scoring knows — `score.<model>`, `lead.stage`, `lead.stage_entered_at`,
//! `lead.last_activity_at`, `lead.owner` — set as properties in memory before each evaluation.
//! Also what the tenant's conditions need loaded (the facts tables at all? raw events since
//! when?) and which score thresholds they compare with (to predict decay crossings).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use proto::condition::{Condition, DistinctOf, Literal, Operand, Window};
use rules::{EventFact, Expanded, FactValue, ProfileFacts};

/// Prefix of the score properties.
pub const SCORE_PREFIX: &str = "score.";
/// Prefix of the lead properties.
pub const LEAD_PREFIX: &str = "lead.";

/// What scoring adds to a profile's facts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadProps {
    /// model key → exact score now.
    pub scores: BTreeMap<String, f64>,
    pub stage: Option<String>,
    pub stage_entered_at: Option<DateTime<Utc>>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub owner: Option<String>,
}

/// Sets the lead properties on `f` (replacing earlier ones).
pub fn apply(f: &mut ProfileFacts, p: &LeadProps) {
    f.properties
        .retain(|k, _| !k.starts_with(SCORE_PREFIX) && !k.starts_with(LEAD_PREFIX));
    for (k, v) in &p.scores {
        f.set_property(format!("{SCORE_PREFIX}{k}"), vec![FactValue::Num(*v)]);
    }
    let mut put = |k: &str, v: Option<FactValue>| {
        if let Some(v) = v {
            f.set_property(format!("{LEAD_PREFIX}{k}"), vec![v]);
        }
    };
    put("stage", p.stage.clone().map(FactValue::Str));
    put(
        "stage_entered_at",
        p.stage_entered_at.map(FactValue::DateTime),
    );
    put(
        "last_activity_at",
        p.last_activity_at.map(FactValue::DateTime),
    );
    put("owner", p.owner.clone().map(FactValue::Str));
}

/// An event's properties as the properties of a profile, for a rule's filters.
pub fn event_view(ev: &EventFact) -> ProfileFacts {
    let mut f = ProfileFacts::new(ev.event_id.clone());
    f.properties = ev.props.clone();
    f
}

/// How far back raw events must be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawSince {
    All,
    Days(u32),
    From(NaiveDate),
}

/// What the tenant's conditions read besides the score and lead properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// Properties, tags, relations or behaviour counts: load the facts.
    pub facts: bool,
    /// Behaviour leaves over raw events (filters, or an event kind with a content tag).
    pub raw: Option<RawSince>,
}

impl Needs {
    /// Adds what `c` needs.
    pub fn add(&mut self, c: &Expanded) {
        let d = c.dependencies();
        let own = |k: &String| k.starts_with(SCORE_PREFIX) || k.starts_with(LEAD_PREFIX);
        if !d.event_kinds.is_empty()
            || d.any_event
            || d.any_content_tag
            || !d.content_tags.is_empty()
            || !d.tags.is_empty()
            || d.relations
            || !d.property_keys.iter().all(own)
        {
            self.facts = true;
        }
        raw_leaves(c.root(), self);
    }

    /// The first day of raw events to load as of `today`.
    pub fn raw_from(&self, today: NaiveDate) -> Option<NaiveDate> {
        self.raw.map(|r| match r {
            RawSince::All => NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(NaiveDate::MIN),
            RawSince::Days(d) => today - chrono::Days::new(u64::from(d)),
            RawSince::From(d) => d,
        })
    }
}

fn widen(a: Option<RawSince>, b: RawSince) -> RawSince {
    match (a, b) {
        (None, b) => b,
        (Some(RawSince::All), _) | (_, RawSince::All) => RawSince::All,
        (Some(RawSince::Days(x)), RawSince::Days(y)) => RawSince::Days(x.max(y)),
        (Some(RawSince::From(x)), RawSince::From(y)) => RawSince::From(x.min(y)),
        // Mixed: a fixed day and a relative window; keep everything rather than guess.
        _ => RawSince::All,
    }
}

/// How far back raw events must go for a leaf counting over `w`.
fn since_of(w: Window) -> RawSince {
    match w {
        Window::Last { days } => RawSince::Days(days),
        Window::Range { from, .. } => RawSince::From(from),
        Window::AllTime => RawSince::All,
    }
}

fn raw_leaves(c: &Condition, n: &mut Needs) {
    match c {
        Condition::And { children } | Condition::Or { children } => {
            children.iter().for_each(|c| raw_leaves(c, n))
        }
        Condition::Not { child } => raw_leaves(child, n),
        Condition::Behaviour(b)
            if !b.filters.is_empty() || (b.event.is_some() && b.content_tag.is_some()) =>
        {
            n.raw = Some(widen(n.raw, since_of(b.window)));
        }
        Condition::Distinct(d) if d.of == DistinctOf::PropertyValues => {
            n.raw = Some(widen(n.raw, since_of(d.window)));
        }
        _ => {}
    }
}

/// Thresholds `c` compares `score.<model>` with: model key → values.
pub fn score_thresholds(c: &Expanded, out: &mut BTreeMap<String, Vec<f64>>) {
    fn walk(c: &Condition, out: &mut BTreeMap<String, Vec<f64>>) {
        match c {
            Condition::And { children } | Condition::Or { children } => {
                children.iter().for_each(|c| walk(c, out))
            }
            Condition::Not { child } => walk(child, out),
            Condition::Property(p) => {
                let Some(model) = p.key.strip_prefix(SCORE_PREFIX) else {
                    return;
                };
                let lits: Vec<&Literal> = match &p.value {
                    Some(Operand::One(l)) => vec![l],
                    Some(Operand::List(ls)) => ls.iter().collect(),
                    None => Vec::new(),
                };
                for l in lits {
                    if let Literal::Number(n) = l {
                        // Whatever the operator, the result can only change where the score
                        // passes the value: that is when the lead is looked at again.
                        out.entry(model.to_string()).or_default().push(*n);
                    }
                }
            }
            _ => {}
        }
    }
    walk(c.root(), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rules::{EvalCtx, Limits, NoRules};
    use serde_json::json;

    fn x(root: serde_json::Value) -> Expanded {
        rules::parse_expanded(
            &json!({"version": 1, "root": root}),
            &Limits::default(),
            &NoRules,
        )
        .unwrap()
        .1
    }

    #[test]
    fn lead_properties_are_seen_by_conditions() {
        let c = x(json!({"type": "and", "children": [
            {"type": "property", "key": "score.engagement", "value_type": "number", "op": "gte", "value": 50},
            {"type": "property", "key": "lead.stage", "value_type": "string", "op": "eq", "value": "new"}]}));
        let mut f = ProfileFacts::new("p");
        let mut p = LeadProps {
            stage: Some("new".into()),
            ..Default::default()
        };
        p.scores.insert("engagement".into(), 49.5);
        apply(&mut f, &p);
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let ctx = EvalCtx {
            now,
            today: now.date_naive(),
        };
        assert!(!rules::evaluate(&c, &f, &ctx));
        p.scores.insert("engagement".into(), 50.0);
        apply(&mut f, &p);
        assert!(rules::evaluate(&c, &f, &ctx));
        let mut n = Needs::default();
        n.add(&c);
        assert_eq!(n, Needs::default(), "scores and stage need no facts tables");
        let mut t = BTreeMap::new();
        score_thresholds(&c, &mut t);
        assert_eq!(t["engagement"], vec![50.0]);
    }

    #[test]
    fn needs_follow_the_leaves() {
        let mut n = Needs::default();
        n.add(&x(json!({"type": "tag", "op": "has", "tags": ["vip"]})));
        assert!(n.facts && n.raw.is_none());
        n.add(&x(json!({"type": "behaviour", "event": "track.page_view",
            "filters": [{"key": "page", "value_type": "string", "op": "eq", "value": "/p"}],
            "window": {"type": "last", "days": 14}})));
        assert_eq!(n.raw, Some(RawSince::Days(14)));
        n.add(&x(
            json!({"type": "behaviour", "event": "track.page_view", "content_tag": "a",
            "window": {"type": "last", "days": 30}}),
        ));
        assert_eq!(n.raw, Some(RawSince::Days(30)));
        let today = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        assert_eq!(n.raw_from(today), NaiveDate::from_ymd_opt(2026, 3, 1));
    }
}
