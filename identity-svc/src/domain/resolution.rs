//! What resolving one event writes, decided without I/O: [`decide`] takes what the store loaded
//! about the event's identifiers ([`Loaded`]: the rows that exist, the profiles holding them,
//! every identifier of those profiles, the pairs an operator separated), plans the resolution
//! ([`super::plan_with_blocks`]) and turns the plan into [`Effects`] — the profile to create or
//! touch, the identifiers to attach and the ledger edges that connect them, the merges with
//! their before / after snapshots, the refusals, the timeline entry and the events to announce.
//! The store writes the effects as they are; identifier rows the resolution creates get their
//! ids only when written, so effects name them by their place in the event ([`Ref::New`]).

use std::collections::{BTreeMap, BTreeSet};

use proto::identity::{
    EnrichRequested, Identifier, IdentifierKind, IdentityMerged, LinkRule, ProfileResolved,
};
use proto::Envelope;
use serde_json::{json, Value};

use super::{plan_with_blocks, Incoming, Key, Policy, RefusalReason};

/// An identifier row a profile holds, as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub id: i64,
    pub kind: String,
    pub namespace: String,
    pub hash: String,
    /// What snapshots show: the clear value, or the masked one of a sensitive kind.
    pub shown: String,
    pub provenance: String,
}

impl Held {
    /// Its lookup key (`None` for a kind this version does not know).
    pub fn key(&self) -> Option<Key> {
        Some(Key {
            kind: IdentifierKind::parse(&self.kind)?,
            namespace: self.namespace.clone(),
            hash: self.hash.clone(),
        })
    }

    /// The identifier as merge records keep it.
    pub fn snapshot(&self) -> Value {
        json!({
            "id": self.id,
            "kind": self.kind,
            "namespace": self.namespace,
            "value": self.shown,
            "provenance": self.provenance,
        })
    }
}

/// A profile and its identifiers as merge records keep them.
pub fn snapshot(profile_id: &str, ids: &[Held]) -> Value {
    json!({"profile_id": profile_id, "identifiers": ids.iter().map(Held::snapshot).collect::<Vec<_>>()})
}

/// What the store found about an event's identifiers, locked for the transaction.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The event's identifiers in its order, each with the canonical profile holding it.
    pub incoming: Vec<Incoming>,
    /// The row of each of them that exists.
    pub rows: Vec<Option<i64>>,
    /// Every identifier of each canonical profile involved, in id order.
    pub held: BTreeMap<String, Vec<Held>>,
    /// Pairs of those profiles an operator separated ([`super::profile_pair`]).
    pub blocked: BTreeSet<(String, String)>,
}

/// What the event is, beyond its identifiers.
pub struct Event<'a> {
    pub env: &'a Envelope,
    pub policy: &'a Policy,
    /// The identifiers `profile.resolved` names (masked where sensitive; not a binding's anchor).
    pub public: &'a [Identifier],
    /// A channel event (`Some`: whether to ask WeChat about its subject) or WeChat's answer about
    /// one resolved before (`None`: no timeline entry, nothing announced but merges).
    pub lookup: Option<bool>,
    /// The id a new profile gets.
    pub new_profile_id: String,
}

/// An identifier row named by the effects: one that exists, or the event's identifier at this
/// place, attached by the resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ref {
    Row(i64),
    New(usize),
}

/// One identifier to attach to the profile, and the ledger edge that connects it: from `from`
/// to it by `rule`, or (`from` `None`) it founds a new profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attach {
    pub idx: usize,
    pub from: Option<Ref>,
    pub rule: LinkRule,
}

/// A profile absorbed into the survivor.
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    pub absorbed: String,
    pub rule: LinkRule,
    pub before: Value,
    pub after: Value,
    /// The link that proves it (without it an un-merge could not tell the sides apart).
    pub proof: Option<(Ref, Ref)>,
    pub announce: Envelope,
}

/// A link a guard refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The survivor first, then the other profile.
    pub candidates: Vec<String>,
    pub rule: LinkRule,
    pub reason: RefusalReason,
    /// The reason as recorded (with the identifier's kind when one identifier was refused).
    pub detail: String,
}

/// Everything one event's resolution writes, in the order it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Effects {
    pub profile_id: String,
    pub created: bool,
    pub attach: Vec<Attach>,
    pub merges: Vec<Merge>,
    pub refusals: Vec<Refused>,
    /// The identifiers the timeline entry names; `None`: no entry (WeChat's answer).
    pub timeline: Option<Vec<Ref>>,
    /// The identifier what the event observed is recorded against.
    pub subject: Option<Ref>,
    /// The profile's derived state must be computed again, whatever the observations change.
    pub refresh: bool,
    /// Announced after the profile's state: `profile.resolved` and the lookup request.
    pub announce: Vec<Envelope>,
}

/// Decides the resolution of `event` on what was `loaded`.
pub fn decide(event: &Event, loaded: &Loaded) -> Effects {
    let env = event.env;
    let keys: BTreeMap<String, Vec<Key>> = loaded
        .held
        .iter()
        .map(|(p, hs)| (p.clone(), hs.iter().filter_map(Held::key).collect()))
        .collect();
    let plan = plan_with_blocks(&loaded.incoming, &keys, event.policy, &loaded.blocked);
    let created = plan.survivor.is_none();
    let survivor = plan
        .survivor
        .clone()
        .unwrap_or_else(|| event.new_profile_id.clone());

    // The row of each identifier once the attached ones are written.
    let row = |i: usize| -> Option<Ref> {
        match loaded.rows.get(i).copied().flatten() {
            Some(id) => Some(Ref::Row(id)),
            None => plan.attach.contains(&i).then_some(Ref::New(i)),
        }
    };
    // The identifier new ones are linked to: one the survivor already held, or (new profile)
    // the first one attached, so the ledger connects every identifier of a profile.
    let anchor = loaded
        .incoming
        .iter()
        .zip(&loaded.rows)
        .find(|(i, _)| i.found_in.as_deref() == Some(survivor.as_str()))
        .and_then(|(_, r)| r.map(Ref::Row))
        .or_else(|| {
            created
                .then(|| plan.attach.first().map(|&i| Ref::New(i)))
                .flatten()
        });
    let binding = loaded.incoming.iter().any(|i| i.binding);
    let attach = plan
        .attach
        .iter()
        .map(|&idx| {
            let (from, rule) = match anchor {
                Some(a) if a != Ref::New(idx) && binding => (Some(a), LinkRule::ExplicitBinding),
                Some(a) if a != Ref::New(idx) => (Some(a), LinkRule::SameEvent),
                _ => (None, LinkRule::NewProfile),
            };
            Attach { idx, from, rule }
        })
        .collect();

    let mut survivor_ids = loaded.held.get(&survivor).cloned().unwrap_or_default();
    let mut merges = Vec::new();
    for step in &plan.merges {
        let gone = loaded.held.get(&step.absorbed).cloned().unwrap_or_default();
        let before = json!({
            "survivor": snapshot(&survivor, &survivor_ids),
            "absorbed": snapshot(&step.absorbed, &gone),
        });
        survivor_ids.extend(gone);
        let proof = match (row(step.from).or(anchor), row(step.to)) {
            (Some(from), Some(to)) => Some((from, to)),
            _ => None,
        };
        let payload = IdentityMerged {
            survivor: survivor.clone(),
            absorbed: vec![step.absorbed.clone()],
            rule: step.rule,
            evidence_event: Some(env.id),
            operator: None,
        };
        merges.push(Merge {
            absorbed: step.absorbed.clone(),
            rule: step.rule,
            before,
            after: json!({"survivor": snapshot(&survivor, &survivor_ids)}),
            proof,
            announce: Envelope::of(&env.tenant_id, &payload)
                .occurred_at(env.occurred_at)
                .trace_id(env.trace_id.clone())
                .dedupe_key(format!("{}|{}", env.id, step.absorbed))
                .build(),
        });
    }

    let refusals = plan
        .refusals
        .iter()
        .map(|r| {
            let mut candidates = vec![survivor.clone()];
            candidates.extend(r.other.clone());
            let detail = match r.identifier {
                Some(idx) => format!("{} ({})", r.reason.as_str(), loaded.incoming[idx].key.kind),
                None => r.reason.as_str().to_string(),
            };
            Refused {
                candidates,
                rule: r.rule,
                reason: r.reason,
                detail,
            }
        })
        .collect();

    let named: Vec<Ref> = (0..loaded.incoming.len()).filter_map(row).collect();
    let enrichment = event.lookup.is_none();
    let refresh = created
        || !plan.merges.is_empty()
        || plan
            .attach
            .iter()
            .any(|&i| loaded.incoming[i].key.kind.is_sensitive() || enrichment);
    let mut announce = Vec::new();
    if let Some(lookup) = event.lookup {
        let payload = ProfileResolved {
            profile_id: survivor.clone(),
            created,
            event: env.clone(),
            identifiers: event.public.to_vec(),
        };
        announce.push(announcement(env, &payload, env.id.to_string()));
        if lookup {
            let request = EnrichRequested { event: env.clone() };
            announce.push(announcement(env, &request, format!("enrich|{}", env.id)));
        }
    }
    Effects {
        profile_id: survivor,
        created,
        attach,
        merges,
        refusals,
        subject: named.first().copied(),
        timeline: (!enrichment).then_some(named),
        refresh,
        announce,
    }
}

/// An event announcing something about `env`, at its time and in its trace.
fn announcement<E: proto::Event>(env: &Envelope, payload: &E, dedupe: String) -> Envelope {
    Envelope::of(&env.tenant_id, payload)
        .occurred_at(env.occurred_at)
        .trace_id(env.trace_id.clone())
        .dedupe_key(dedupe)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ResolutionConfig;
    use crate::domain::tests::inc;
    use proto::identity::{ENRICH_REQUESTED, IDENTITY_MERGED, PROFILE_RESOLVED};
    use IdentifierKind::*;

    fn held(id: i64, kind: IdentifierKind, v: &str) -> Held {
        Held {
            id,
            kind: kind.as_str().into(),
            namespace: "ns".into(),
            hash: v.into(),
            shown: v.into(),
            provenance: "wechat".into(),
        }
    }

    /// An event carrying o1 (held by the older p1) and u1 (held by p2, with m1).
    fn two_profiles() -> Loaded {
        Loaded {
            incoming: vec![
                inc(OaOpenid, "o1", Some("p1")),
                inc(Unionid, "u1", Some("p2")),
            ],
            rows: vec![Some(1), Some(2)],
            held: [
                ("p1".to_string(), vec![held(1, OaOpenid, "o1")]),
                (
                    "p2".to_string(),
                    vec![held(2, Unionid, "u1"), held(3, MpOpenid, "m1")],
                ),
            ]
            .into(),
            ..Default::default()
        }
    }

    fn decide_on(loaded: &Loaded, lookup: Option<bool>) -> Effects {
        let env = Envelope::builder("channel.oa.subscribe", "t1", json!({}))
            .dedupe_key("e1")
            .build();
        let policy = Policy::from_config(&ResolutionConfig::default());
        decide(
            &Event {
                env: &env,
                policy: &policy,
                public: &[],
                lookup,
                new_profile_id: "p-new".into(),
            },
            loaded,
        )
    }

    #[test]
    fn a_new_person_founds_a_profile_and_links_the_rest_to_the_first_identifier() {
        let loaded = Loaded {
            incoming: vec![inc(OaOpenid, "o1", None), inc(Unionid, "u1", None)],
            rows: vec![None, None],
            ..Default::default()
        };
        let fx = decide_on(&loaded, Some(true));
        assert_eq!((fx.profile_id.as_str(), fx.created), ("p-new", true));
        assert_eq!(
            fx.attach,
            vec![
                Attach {
                    idx: 0,
                    from: None,
                    rule: LinkRule::NewProfile
                },
                Attach {
                    idx: 1,
                    from: Some(Ref::New(0)),
                    rule: LinkRule::SameEvent
                },
            ]
        );
        assert_eq!(fx.timeline, Some(vec![Ref::New(0), Ref::New(1)]));
        assert_eq!(fx.subject, Some(Ref::New(0)));
        assert!(fx.refresh && fx.merges.is_empty() && fx.refusals.is_empty());
        let kinds: Vec<&str> = fx.announce.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, [PROFILE_RESOLVED, ENRICH_REQUESTED]);
    }

    #[test]
    fn a_known_person_touches_the_profile_and_refreshes_only_when_asked() {
        let loaded = Loaded {
            incoming: vec![inc(OaOpenid, "o1", Some("p1"))],
            rows: vec![Some(7)],
            held: [("p1".to_string(), vec![held(7, OaOpenid, "o1")])].into(),
            ..Default::default()
        };
        let fx = decide_on(&loaded, Some(false));
        assert_eq!((fx.profile_id.as_str(), fx.created), ("p1", false));
        assert!(fx.attach.is_empty() && !fx.refresh);
        assert_eq!(fx.subject, Some(Ref::Row(7)));
        assert_eq!(fx.announce.len(), 1);
        // WeChat's answer: no timeline entry, nothing announced.
        let fx = decide_on(&loaded, None);
        assert_eq!(fx.timeline, None);
        assert!(fx.announce.is_empty());
    }

    #[test]
    fn a_unionid_merges_the_younger_profile_with_snapshots_and_a_proving_edge() {
        // p1 (older) holds o1; p2 holds the unionid; the event carries both.
        let loaded = two_profiles();
        let fx = decide_on(&loaded, Some(false));
        assert_eq!(fx.profile_id, "p1");
        assert_eq!(fx.merges.len(), 1);
        let m = &fx.merges[0];
        assert_eq!((m.absorbed.as_str(), m.rule), ("p2", LinkRule::Unionid));
        assert_eq!(m.proof, Some((Ref::Row(1), Ref::Row(2))));
        assert_eq!(
            m.before["absorbed"]["identifiers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            m.after["survivor"]["identifiers"].as_array().unwrap().len(),
            3
        );
        assert_eq!(m.announce.kind, IDENTITY_MERGED);
        assert!(fx.refresh);
        assert_eq!(fx.timeline, Some(vec![Ref::Row(1), Ref::Row(2)]));
    }

    #[test]
    fn an_operators_separation_is_refused_not_merged() {
        let loaded = Loaded {
            blocked: [("p1".to_string(), "p2".to_string())].into(),
            ..two_profiles()
        };
        let fx = decide_on(&loaded, Some(false));
        assert!(fx.merges.is_empty());
        assert_eq!(fx.refusals.len(), 1);
        assert_eq!(fx.refusals[0].candidates, ["p1", "p2"]);
        assert_eq!(fx.refusals[0].reason, RefusalReason::ManuallyUnmerged);
    }
}
