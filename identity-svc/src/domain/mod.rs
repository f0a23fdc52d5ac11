//! Pure identity logic, no I/O: which identifiers an event carries ([`extract`]), which values are
//! never identifiers ([`Blocklist`]), personal-data hashing, sealing and masking ([`pii`]), and the
//! resolution plan for one event ([`plan`]): create, attach, or merge when a rule links profiles
//! and the guards allow it — otherwise a recorded refusal —, and what that plan writes
//! ([`resolution::decide`]); which identifiers still hang together when a merge is undone
//! ([`components`]) and what an un-merge or split separates: the edges it retracts, the sides and
//! the timeline rows that move ([`separation`]). Also what a note on a customer may say and who
//! may change it ([`notes`]), where a customer can be reached on each channel ([`reach`]), and
//! the source registry a touch is attributed through ([`sources`]).

pub mod components;
pub mod derive;
pub mod extract;
pub mod fields;
pub mod notes;
pub mod observe;
pub mod pii;
pub mod reach;
pub mod resolution;
pub mod separation;
pub mod sources;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proto::identity::{IdentifierKind, LinkRule, Provenance};

use crate::config::ResolutionConfig;

/// Values that are never identifiers: empty, `0`, `null`, `undefined`, configured values and
/// configured `*`/`?` patterns.
#[derive(Debug, Clone, Default)]
pub struct Blocklist {
    values: BTreeSet<String>,
    patterns: Vec<Vec<char>>,
}

const ALWAYS_BLOCKED: [&str; 4] = ["", "0", "null", "undefined"];

impl Blocklist {
    pub fn new(values: &[String], patterns: &[String]) -> Self {
        Blocklist {
            values: values.iter().map(|v| v.trim().to_string()).collect(),
            patterns: patterns
                .iter()
                .map(|p| p.trim().chars().collect())
                .collect(),
        }
    }

    pub fn is_blocked(&self, value: &str) -> bool {
        let v = value.trim();
        ALWAYS_BLOCKED.iter().any(|b| v.eq_ignore_ascii_case(b)) || self.values.contains(v) || {
            let chars: Vec<char> = v.chars().collect();
            self.patterns.iter().any(|p| glob(p, &chars))
        }
    }
}

/// `*` matches any run (also empty), `?` one character.
fn glob(p: &[char], v: &[char]) -> bool {
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Merge rules and guards in force (for one tenant: [`Policy::for_tenant`]).
#[derive(Debug, Clone)]
pub struct Policy {
    pub merge_on_unionid: bool,
    pub merge_on_verified_phone: bool,
    pub merge_on_binding: bool,
    pub max_per_kind: usize,
    pub blocklist: Blocklist,
    /// Region typed phone numbers without a country code are read in (ISO 3166, `CN`).
    pub default_region: String,
    /// App id → Open Platform account: the namespace of the unionids the app reports.
    pub open_platforms: Arc<BTreeMap<String, String>>,
    /// Tenants with their own rules.
    pub tenants: Arc<BTreeMap<String, Policy>>,
}

impl Policy {
    pub fn from_config(c: &ResolutionConfig) -> Self {
        let open_platforms = Arc::new(c.open_platforms.clone());
        let base = Policy {
            merge_on_unionid: c.merge_on_unionid,
            merge_on_verified_phone: c.merge_on_verified_phone,
            merge_on_binding: c.merge_on_binding,
            max_per_kind: c.max_identifiers_per_kind as usize,
            blocklist: Blocklist::new(&c.blocked_values, &c.blocked_patterns),
            default_region: c.default_phone_region.clone(),
            open_platforms,
            tenants: Arc::default(),
        };
        let tenants = c
            .tenants
            .iter()
            .map(|(t, o)| {
                let values: Vec<String> = c
                    .blocked_values
                    .iter()
                    .chain(&o.blocked_values)
                    .cloned()
                    .collect();
                let patterns: Vec<String> = c
                    .blocked_patterns
                    .iter()
                    .chain(&o.blocked_patterns)
                    .cloned()
                    .collect();
                let p = Policy {
                    merge_on_unionid: o.merge_on_unionid.unwrap_or(base.merge_on_unionid),
                    merge_on_verified_phone: o
                        .merge_on_verified_phone
                        .unwrap_or(base.merge_on_verified_phone),
                    merge_on_binding: o.merge_on_binding.unwrap_or(base.merge_on_binding),
                    max_per_kind: o
                        .max_identifiers_per_kind
                        .map_or(base.max_per_kind, |n| n as usize),
                    blocklist: Blocklist::new(&values, &patterns),
                    default_region: o
                        .default_phone_region
                        .clone()
                        .unwrap_or_else(|| base.default_region.clone()),
                    ..base.clone()
                };
                (t.clone(), p)
            })
            .collect();
        Policy {
            tenants: Arc::new(tenants),
            ..base
        }
    }

    /// The rules of `tenant` (its overrides, else these).
    pub fn for_tenant(&self, tenant: &str) -> &Policy {
        self.tenants.get(tenant).unwrap_or(self)
    }

    /// The namespace of unionids reported by app `app_id`.
    pub fn unionid_namespace(&self, app_id: Option<&str>) -> &str {
        app_id
            .and_then(|a| self.open_platforms.get(a))
            .map_or(proto::identity::DEFAULT_NAMESPACE, String::as_str)
    }
}

/// An identifier as the planner sees it: its lookup key (the value is hashed).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub kind: IdentifierKind,
    pub namespace: String,
    pub hash: String,
}

/// One identifier of the event and the profile that already holds it, if any.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub key: Key,
    pub provenance: Provenance,
    pub found_in: Option<String>,
    /// Stands for the profile a personalised binding code names (not carried by the event).
    pub binding: bool,
}

/// Why a link was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The result would hold two different unionids of one namespace.
    ConflictingUnionids,
    /// The result would hold more identifiers of one kind than allowed.
    KindLimit,
    /// The rule that links them is switched off.
    RuleDisabled,
    /// An operator separated these profiles (un-merge or split); only a manual merge joins them.
    ManuallyUnmerged,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::ConflictingUnionids => "conflicting_unionids",
            RefusalReason::KindLimit => "kind_limit",
            RefusalReason::RuleDisabled => "rule_disabled",
            RefusalReason::ManuallyUnmerged => "manually_unmerged",
        }
    }
}

/// A merge of `absorbed` into the survivor, proven by the event's identifiers `from` (on the
/// survivor's side) and `to` (held by `absorbed`), indexes into the incoming list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeStep {
    pub absorbed: String,
    pub rule: LinkRule,
    pub from: usize,
    pub to: usize,
}

/// A link the guards refused: the other profile (or `None` when a new identifier could not be
/// attached — `identifier` says which), the rule and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub other: Option<String>,
    pub identifier: Option<usize>,
    pub rule: LinkRule,
    pub reason: RefusalReason,
}

/// What to do with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The profile the event resolves to; `None`: create one.
    pub survivor: Option<String>,
    /// Profiles to absorb into the survivor.
    pub merges: Vec<MergeStep>,
    /// Links refused by a guard.
    pub refusals: Vec<Refusal>,
    /// New identifiers (indexes) to attach to the survivor.
    pub attach: Vec<usize>,
}

/// How strongly two identifiers of one event prove one person, for merging the profiles holding
/// them. WeChat-asserted ids (openids, external_userids) linked through a unionid prove it by
/// rule `unionid`; a phone verified by WeChat by rule `verified_phone`. Cookies, e-mails, CRM ids
/// and typed phones never merge profiles on their own (they only attach).
fn pair_rule(a: &Incoming, b: &Incoming) -> Option<LinkRule> {
    use IdentifierKind::*;
    if a.binding || b.binding {
        return Some(LinkRule::ExplicitBinding);
    }
    let weak = |i: &Incoming| matches!(i.key.kind, WebCookie | Email | CrmId);
    if weak(a) || weak(b) {
        return None;
    }
    let phone = |i: &Incoming| i.key.kind == Phone;
    if phone(a) || phone(b) {
        let verified = [a, b]
            .iter()
            .filter(|i| phone(i))
            .all(|i| i.provenance == Provenance::VerifiedMp);
        return verified.then_some(LinkRule::VerifiedPhone);
    }
    (a.key.kind == Unionid || b.key.kind == Unionid).then_some(LinkRule::Unionid)
}

fn rank(r: LinkRule) -> u8 {
    match r {
        LinkRule::ExplicitBinding => 3,
        LinkRule::Unionid => 2,
        LinkRule::VerifiedPhone => 1,
        _ => 0,
    }
}

/// Identifiers of a profile side, for the guards.
#[derive(Debug, Clone, Default)]
struct Side {
    per_kind: BTreeMap<IdentifierKind, usize>,
    /// namespace → unionid hashes.
    unionids: BTreeMap<String, BTreeSet<String>>,
    keys: BTreeSet<Key>,
}

impl Side {
    fn add(&mut self, k: &Key) {
        if !self.keys.insert(k.clone()) {
            return;
        }
        *self.per_kind.entry(k.kind).or_default() += 1;
        if k.kind == IdentifierKind::Unionid {
            self.unionids
                .entry(k.namespace.clone())
                .or_default()
                .insert(k.hash.clone());
        }
    }

    fn with(&self, keys: &[Key]) -> Side {
        let mut s = self.clone();
        for k in keys {
            s.add(k);
        }
        s
    }

    fn violation(&self, max_per_kind: usize) -> Option<RefusalReason> {
        if self.unionids.values().any(|h| h.len() > 1) {
            return Some(RefusalReason::ConflictingUnionids);
        }
        if self.per_kind.values().any(|n| *n > max_per_kind) {
            return Some(RefusalReason::KindLimit);
        }
        None
    }
}

/// Would one profile holding the identifiers of both `a` and `b` break a guard (two unionids of
/// one namespace, too many identifiers of a kind)? For manual merges.
pub fn merge_violation(a: &[Key], b: &[Key], policy: &Policy) -> Option<RefusalReason> {
    Side::default()
        .with(a)
        .with(b)
        .violation(policy.max_per_kind)
}

/// A pair of profiles in a stable order, as kept in [`plan_with_blocks`]'s `blocked` set.
pub fn profile_pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

/// Plans the resolution of one event: `incoming` in event order (subject first), `profiles` every
/// identifier key of each profile that holds one of them.
pub fn plan(incoming: &[Incoming], profiles: &BTreeMap<String, Vec<Key>>, policy: &Policy) -> Plan {
    plan_with_blocks(incoming, profiles, policy, &BTreeSet::new())
}

/// [`plan`], refusing (reason `manually_unmerged`) to merge two profiles whose [`profile_pair`] is
/// in `blocked`.
pub fn plan_with_blocks(
    incoming: &[Incoming],
    profiles: &BTreeMap<String, Vec<Key>>,
    policy: &Policy,
    blocked: &BTreeSet<(String, String)>,
) -> Plan {
    let mut refusals = Vec::new();
    let mut merges = Vec::new();
    let primary = incoming.iter().find_map(|i| i.found_in.clone());
    let mut side = Side::default();
    let mut members: Vec<String> = Vec::new();
    if let Some(p) = &primary {
        side = side.with(profiles.get(p).map(Vec::as_slice).unwrap_or(&[]));
        members.push(p.clone());
        let others: BTreeSet<&String> = incoming
            .iter()
            .filter_map(|i| i.found_in.as_ref())
            .filter(|id| *id != p)
            .collect();
        for other in others {
            // The strongest link between the other profile's identifiers and the rest of the event.
            let mut best: Option<(LinkRule, usize, usize)> = None;
            for (to, b) in incoming.iter().enumerate() {
                if b.found_in.as_ref() != Some(other) {
                    continue;
                }
                for (from, a) in incoming.iter().enumerate() {
                    if a.found_in.as_ref() == Some(other) {
                        continue;
                    }
                    if let Some(r) = pair_rule(a, b) {
                        if best.is_none_or(|(br, _, _)| rank(r) > rank(br)) {
                            best = Some((r, from, to));
                        }
                    }
                }
            }
            let Some((rule, from, to)) = best else {
                // Only weak identifiers connect them: not evidence of one person, nothing to record.
                continue;
            };
            let enabled = match rule {
                LinkRule::Unionid => policy.merge_on_unionid,
                LinkRule::VerifiedPhone => policy.merge_on_verified_phone,
                LinkRule::ExplicitBinding => policy.merge_on_binding,
                _ => false,
            };
            let is_blocked = members
                .iter()
                .any(|m| blocked.contains(&profile_pair(m, other)));
            let reason = if is_blocked {
                RefusalReason::ManuallyUnmerged
            } else if enabled {
                let combined = side.with(profiles.get(other).map(Vec::as_slice).unwrap_or(&[]));
                match combined.violation(policy.max_per_kind) {
                    None => {
                        side = combined;
                        members.push(other.clone());
                        merges.push(MergeStep {
                            absorbed: other.clone(),
                            rule,
                            from,
                            to,
                        });
                        continue;
                    }
                    Some(r) => r,
                }
            } else {
                RefusalReason::RuleDisabled
            };
            refusals.push(Refusal {
                other: Some(other.clone()),
                identifier: None,
                rule,
                reason,
            });
        }
    }
    // The oldest profile survives (ids are UUIDv7, so ordering by id is ordering by creation).
    let survivor = members.iter().min().cloned();
    if let Some(s) = &survivor {
        for m in merges.iter_mut() {
            if &m.absorbed == s {
                // The primary is absorbed into an older profile instead.
                m.absorbed = primary.clone().unwrap_or_default();
                std::mem::swap(&mut m.from, &mut m.to);
            }
        }
    }
    // A new subject whose own unionid conflicts with the profile it reached through another
    // identifier (say, a phone someone else verified before) is another person: it gets its own
    // profile, and the link is refused and recorded.
    let subject_is_new = incoming.first().is_some_and(|i| i.found_in.is_none());
    if let (Some(p), true) = (&primary, subject_is_new) {
        let fresh: Vec<Key> = incoming
            .iter()
            .filter(|i| i.found_in.is_none())
            .map(|i| i.key.clone())
            .collect();
        let conflicts = |s: &Side| s.unionids.values().any(|h| h.len() > 1);
        if conflicts(&side.with(&fresh)) && !conflicts(&Side::default().with(&fresh)) {
            let rule = incoming
                .iter()
                .filter(|b| b.found_in.is_some())
                .flat_map(|b| {
                    incoming
                        .iter()
                        .filter(|a| a.found_in.is_none())
                        .filter_map(move |a| pair_rule(a, b))
                })
                .max_by_key(|r| rank(*r))
                .unwrap_or(LinkRule::SameEvent);
            let mut own = Side::default();
            let mut attach = Vec::new();
            for (idx, i) in incoming.iter().enumerate() {
                if i.found_in.is_some() || own.keys.contains(&i.key) {
                    continue;
                }
                let next = own.with(std::slice::from_ref(&i.key));
                if next.violation(policy.max_per_kind).is_none() {
                    own = next;
                    attach.push(idx);
                }
            }
            refusals.push(Refusal {
                other: Some(p.clone()),
                identifier: None,
                rule,
                reason: RefusalReason::ConflictingUnionids,
            });
            return Plan {
                survivor: None,
                merges: Vec::new(),
                refusals,
                attach,
            };
        }
    }
    let mut attach = Vec::new();
    for (idx, i) in incoming.iter().enumerate() {
        if i.found_in.is_some() || side.keys.contains(&i.key) {
            continue;
        }
        let next = side.with(std::slice::from_ref(&i.key));
        match next.violation(policy.max_per_kind) {
            None => {
                side = next;
                attach.push(idx);
            }
            Some(reason) => refusals.push(Refusal {
                other: None,
                identifier: Some(idx),
                rule: LinkRule::SameEvent,
                reason,
            }),
        }
    }
    Plan {
        survivor,
        merges,
        refusals,
        attach,
    }
}

#[cfg(test)]
pub(crate) mod tests;
