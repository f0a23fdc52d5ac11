//! What settling reads: the profile's memberships with each held tag's group
//! ([`holdings`]), and which of the profile's facts a round's rules look at ([`options`],
//! loaded again only when a round reads something the loaded facts lack: [`covers`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::Duration;
use facts::LoadOptions;
use rules::ProfileFacts;
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter};

use crate::domain::{At, Holdings, RuleEntry};
use crate::store::entities::membership;
use crate::store::members;
use crate::store::rules::TenantRules;

/// Raw events older than this are never read for evaluation (the longest window).
const EVENT_HORIZON_DAYS: i64 = 366;

/// Every reason the profile holds each tag for, with the tag's group (from the rule set, or read
/// for a tag newer than it; `None` for a tag the catalogue does not hold).
pub async fn holdings(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    set: &TenantRules,
) -> Result<Holdings, DbErr> {
    let rows = membership::Entity::find()
        .filter(membership::Column::TenantId.eq(tenant))
        .filter(membership::Column::ProfileId.eq(profile))
        .all(txn)
        .await?;
    let mut newer: HashMap<String, Option<String>> = HashMap::new();
    let mut h = Holdings::default();
    for m in rows {
        let group = match set.tags.get(&m.tag_id) {
            Some(i) => Some(i.group.id.clone()),
            None => match newer.get(&m.tag_id) {
                Some(g) => g.clone(),
                None => {
                    let g = members::tag_info(txn, tenant, &m.tag_id)
                        .await?
                        .map(|i| i.group.id);
                    newer.insert(m.tag_id.clone(), g.clone());
                    g
                }
            },
        };
        h.hold(&m.tag_id, group.as_deref(), &m.source, &m.origin);
    }
    Ok(h)
}

/// The profile's facts holding what `want` reads: those loaded before when they cover it
/// ([`covers`]), else loaded now (and kept in `loaded` for the next reader).
pub async fn facts<'a>(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    loaded: &'a mut Option<(LoadOptions, ProfileFacts)>,
    want: LoadOptions,
) -> Result<&'a mut ProfileFacts, DbErr> {
    let (have, facts) = match loaded.take() {
        Some((have, facts)) if covers(&have, &want) => (have, facts),
        _ => {
            let facts = facts::load_profile(txn, tenant, profile, &want).await?;
            (want, facts)
        }
    };
    Ok(&mut loaded.insert((have, facts)).1)
}

/// Reads only what the candidate rules can look at: their property keys, tags, relationships,
/// the buckets of their metrics, raw events of their kinds when a leaf filters on properties,
/// the lead's scores (valued at `at`) when a leaf reads `score.<model>`.
pub fn options(cands: &[Arc<RuleEntry>], at: &At) -> LoadOptions {
    let today = at.today;
    let raw = cands.iter().any(|e| {
        !e.deps.event_property_keys.is_empty()
            || (!e.deps.event_kinds.is_empty() && !e.deps.content_tags.is_empty())
    });
    let any_event = cands.iter().any(|e| e.deps.any_event);
    let keys: BTreeSet<String> = cands
        .iter()
        .flat_map(|e| e.deps.property_keys.iter().cloned())
        .collect();
    let metrics: BTreeSet<String> = cands
        .iter()
        .flat_map(|e| {
            e.deps
                .event_kinds
                .iter()
                .map(|k| rules::event_metric(k))
                .chain(
                    e.deps
                        .content_tags
                        .iter()
                        .map(|t| rules::content_tag_metric(t)),
                )
                .collect::<Vec<_>>()
        })
        .collect();
    LoadOptions {
        events_since: raw.then(|| today - Duration::days(EVENT_HORIZON_DAYS)),
        // Empty: every kind (a distinct count over events of any kind).
        event_kinds: if raw && !any_event {
            cands
                .iter()
                .flat_map(|e| e.deps.event_kinds.iter().cloned())
                .collect()
        } else {
            BTreeSet::new()
        },
        tags: cands.iter().any(|e| !e.deps.tags.is_empty()),
        relations: cands.iter().any(|e| e.deps.relations),
        scores_at: keys
            .iter()
            .any(|k| rules::score_model(k).is_some())
            .then_some(at.now),
        properties: (!keys.is_empty()).then_some(keys),
        // Distinct counts read every metric of a prefix: all of them.
        metrics: if any_event || cands.iter().any(|e| e.deps.any_content_tag) {
            Some(BTreeSet::new())
        } else {
            (!metrics.is_empty()).then_some(metrics)
        },
    }
}

/// Facts loaded with `have` hold everything `want` reads.
pub fn covers(have: &LoadOptions, want: &LoadOptions) -> bool {
    // `None`: nothing; an empty set: everything; else these keys.
    fn keys(have: &Option<BTreeSet<String>>, want: &Option<BTreeSet<String>>) -> bool {
        match (have, want) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(h), Some(w)) => h.is_empty() || (!w.is_empty() && w.is_subset(h)),
        }
    }
    let events = match (have.events_since, want.events_since) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(h), Some(w)) => {
            h <= w
                && (have.event_kinds.is_empty()
                    || (!want.event_kinds.is_empty()
                        && want.event_kinds.is_subset(&have.event_kinds)))
        }
    };
    events
        && keys(&have.properties, &want.properties)
        && keys(&have.metrics, &want.metrics)
        && (have.tags || !want.tags)
        && (have.relations || !want.relations)
        && (have.scores_at.is_some() || want.scores_at.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn set(xs: &[&str]) -> BTreeSet<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    fn nothing() -> LoadOptions {
        LoadOptions {
            events_since: None,
            event_kinds: BTreeSet::new(),
            properties: None,
            tags: false,
            relations: false,
            metrics: None,
            scores_at: None,
        }
    }

    #[test]
    fn loaded_facts_cover_what_reads_less() {
        let day = NaiveDate::from_ymd_opt(2024, 6, 15).unwrap();
        let have = LoadOptions {
            events_since: Some(day),
            event_kinds: set(&["a", "b"]),
            properties: Some(set(&["city", "age"])),
            tags: true,
            relations: false,
            metrics: Some(set(&["e:a"])),
            scores_at: None,
        };
        assert!(covers(&have, &nothing()));
        assert!(covers(&have, &have));
        let more = |f: &dyn Fn(&mut LoadOptions)| {
            let mut w = have.clone();
            f(&mut w);
            covers(&have, &w)
        };
        assert!(more(&|w| w.properties = Some(set(&["city"]))));
        assert!(more(&|w| w.event_kinds = set(&["b"])));
        assert!(!more(&|w| w.properties = Some(set(&["phone"]))));
        assert!(!more(&|w| w.properties = Some(BTreeSet::new())));
        assert!(!more(&|w| w.relations = true));
        assert!(!more(&|w| w.metrics = Some(set(&["e:b"]))));
        assert!(!more(&|w| w.event_kinds = BTreeSet::new()));
        assert!(!more(&|w| w.events_since = day.pred_opt()));
        assert!(!more(&|w| w.scores_at = Some(chrono::Utc::now())));
        assert!(!covers(&nothing(), &have));
        let everything = LoadOptions::default();
        assert!(covers(
            &everything,
            &LoadOptions {
                events_since: None,
                ..have.clone()
            }
        ));
    }
}
