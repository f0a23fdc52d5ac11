//! What an event says about its subject beyond identifiers: field claims (with how far they are
//! trusted), relationship changes (OA subscription, WeCom follow, customer-group membership),
//! identifiers typed into forms, and the values refused by cleaning (data-quality issues).
//!
//! | event | observations |
//! |---|---|
//! | OA `subscribe` / `unsubscribe` | subscription on/off (with the QR scene); a touch `{channel: oa, campaign: scene}` on subscribe |
//! | OA `SCAN` | a touch `{channel: oa_qrcode, campaign: scene}` |
//! | WeCom add / add-half external contact | follow added (rep, `state`); a touch `{channel: wecom, campaign: state}` |
//! | WeCom edit external contact | follow details refreshed (through enrichment) |
//! | WeCom del external contact / del follow user | follow ended |
//! | WeCom customer-group member changes, dismiss | membership of each external member (see [`GroupChange`]) |
//! | `channel.mp.session` | a touch `{channel: mini_program}` |
//! | `channel.track.*` | a touch from `utm_*` / `source.*` properties; for `form_submit`, typed fields (catalogue keys and common aliases), phone and e-mail identifiers |
//! | enrichment (WeChat APIs) | verified fields: name, avatar, gender, company, role, language; follow remark / add_way / state |

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use proto::callback::CallbackReceived;
use proto::channel::{EventBody, ExternalChatChangeType, ExternalContactChangeType};
use proto::identity::{Identifier, IdentifierKind, Provenance, DEFAULT_NAMESPACE};
use proto::sdk::{TrackKind, Tracked, MP_SESSION, TRACK_PREFIX};
use proto::Envelope;
use serde_json::{json, Value};

use super::extract::{normalise, Found};
use super::fields::{self, CustomField, Kind, Rejection, EMAIL_KEYS, PHONE_KEYS};
use super::sources::{BindingKind, Registry};

/// How far a claim is trusted; a higher level wins over a lower one whatever their age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Trust {
    /// Inferred from behaviour (tracking parameters).
    Observed = 0,
    /// Typed by the person (forms).
    Typed = 1,
    /// Bulk import.
    Imported = 2,
    /// Verified by WeChat (its APIs and callbacks).
    Wechat = 3,
    /// Set by an operator.
    Operator = 4,
}

impl Trust {
    pub const ALL: [Trust; 5] = [
        Trust::Observed,
        Trust::Typed,
        Trust::Imported,
        Trust::Wechat,
        Trust::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Observed => "observed",
            Trust::Typed => "typed",
            Trust::Imported => "imported",
            Trust::Wechat => "wechat",
            Trust::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One statement about one field of the subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// Catalogue key (`contact.city`, `source.first`, `custom.level`).
    pub field: String,
    /// The cleaned value.
    pub value: Value,
    pub trust: Trust,
    /// Who said it: `oa.subscribe`, `track.form_submit`, `wecom.external_contact`, `operator`…
    /// A field keeps one statement per source (the newest; the earliest for first touch).
    pub source: String,
    pub at: DateTime<Utc>,
}

/// The claims one identifier keeps of `claims` when it held none before: one per (field,
/// source), the earliest for a first-touch field and the newest (the later one on a tie) for the
/// others — what storing them one by one would leave. In order of first appearance.
pub fn kept_claims(claims: &[Claim]) -> Vec<&Claim> {
    let mut kept: Vec<&Claim> = Vec::new();
    for c in claims {
        match kept
            .iter_mut()
            .find(|k| k.field == c.field && k.source == c.source)
        {
            None => kept.push(c),
            Some(k) => {
                let replace = match super::fields::strategy(&c.field) {
                    super::fields::Strategy::Earliest => c.at < k.at,
                    _ => c.at >= k.at,
                };
                if replace {
                    *k = c;
                }
            }
        }
    }
    kept
}

/// A refused value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub field: String,
    /// The offending value, cut to 64 characters (phones and e-mails masked).
    pub value: String,
    pub reason: Rejection,
    /// Where the value came from (`track.form_submit`, `operator`, …).
    pub source: String,
}

/// A change of the subject's relationship state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelationChange {
    /// Following (or not) an Official Account.
    Oa {
        app_id: String,
        subscribed: bool,
        scene: Option<String>,
        at: DateTime<Utc>,
    },
    /// A WeCom rep's relationship with the subject.
    Follow {
        corp_id: String,
        user_id: String,
        change: FollowChange,
        at: DateTime<Utc>,
    },
}

/// What happened to a follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowChange {
    /// The rep and the customer became contacts (`state` of the contact-me code).
    Added { state: Option<String> },
    /// Either side deleted the other.
    Deleted,
    /// Details from WeCom (enrichment): remark, add_way, state, when it began, and the corp
    /// tags on the customer in the rep's view (`None`: not known; `Some`: WeCom's whole list,
    /// sorted, without duplicates).
    Details {
        remark: Option<String>,
        add_way: Option<i64>,
        state: Option<String>,
        since: Option<DateTime<Utc>>,
        corp_tags: Option<Vec<String>>,
    },
}

/// Membership changes of one customer group (events about several people).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChange {
    pub corp_id: String,
    pub chat_id: String,
    /// External members (`wm…`/`wo…` external_userids) that joined / left; empty with
    /// `dismissed`.
    pub joined: Vec<String>,
    pub left: Vec<String>,
    /// The group was dismissed: every member left.
    pub dismissed: bool,
    pub at: DateTime<Utc>,
}

/// Facts from WeChat's APIs about the subject (filled by the caller from `user/info` or
/// `externalcontact/get`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enriched {
    /// UnionID, when the app is bound to an Open Platform account.
    pub unionid: Option<String>,
    /// Field values as WeChat states them (catalogue keys, raw values).
    pub fields: Vec<(String, Value)>,
    /// The follow of the event's rep, for WeCom contact events.
    pub follow: Option<FollowChange>,
    /// Which API: `oa.user_info`, `wecom.external_contact`.
    pub source: String,
}

/// Everything an event says beyond its subject's identifiers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observations {
    /// Identifiers typed into a form (phone, e-mail), after the event's own.
    pub identifiers: Vec<Found>,
    pub claims: Vec<Claim>,
    pub relations: Vec<RelationChange>,
    pub issues: Vec<Issue>,
}

impl Observations {
    pub fn is_empty(&self) -> bool {
        self.identifiers.is_empty()
            && self.claims.is_empty()
            && self.relations.is_empty()
            && self.issues.is_empty()
    }
}

/// Settings that shape observation.
#[derive(Debug, Clone)]
pub struct ObserveCtx<'a> {
    /// Region typed phone numbers without a country code are read in (`CN`).
    pub default_region: &'a str,
    /// The tenant's custom fields.
    pub custom: &'a [CustomField],
    /// The tenant's source registry (touches through a bound key are attributed to its node).
    pub sources: &'a Registry,
    pub now: DateTime<Utc>,
}

/// `touch` with the levels and node of the registry's node `key` of `kind` is bound to, when it
/// is bound.
fn attributed(ctx: &ObserveCtx, kind: BindingKind, key: Option<&str>, mut touch: Value) -> Value {
    if let Some(a) = key.and_then(|k| ctx.sources.resolve(kind, k)) {
        touch["levels"] = json!(a.levels);
        touch["node"] = json!(a.node_id);
    }
    touch
}

/// Observations of `env` (decoded before by [`super::extract::extract`], so payload errors do
/// not occur here; an undecodable payload gives none).
pub fn observe(env: &Envelope, enriched: Option<&Enriched>, ctx: &ObserveCtx) -> Observations {
    let mut o = Observations::default();
    let at = env.occurred_at;
    if env.kind == MP_SESSION {
        touch(
            &mut o,
            json!({"channel": "mini_program"}),
            "mp.session",
            Trust::Wechat,
            at,
        );
    } else if env
        .kind
        .strip_prefix(TRACK_PREFIX)
        .is_some_and(|r| r.starts_with('.'))
    {
        if let Ok(t) = env.payload_as::<Tracked>() {
            tracked(&mut o, &t, at, ctx);
        }
    } else if let Ok(cb) = env.payload_as::<CallbackReceived>() {
        callback(&mut o, &cb, at, ctx);
    }
    if let Some(e) = enriched {
        for (field, raw) in &e.fields {
            claim(&mut o, field, raw, Trust::Wechat, &e.source, at, ctx);
        }
        if let (
            Some(change),
            Some(RelationChange::Follow {
                corp_id, user_id, ..
            }),
        ) = (
            &e.follow,
            o.relations
                .iter()
                .find(|r| matches!(r, RelationChange::Follow { .. }))
                .cloned(),
        ) {
            o.relations.push(RelationChange::Follow {
                corp_id,
                user_id,
                change: change.clone(),
                at,
            });
        }
    }
    o
}

fn callback(o: &mut Observations, cb: &CallbackReceived, at: DateTime<Utc>, ctx: &ObserveCtx) {
    let app = cb.app_id.clone();
    match &cb.event.body {
        EventBody::Subscribe { scene, .. } => {
            o.relations.push(RelationChange::Oa {
                app_id: app,
                subscribed: true,
                scene: scene.clone(),
                at,
            });
            let v = json!({"channel": "oa", "campaign": scene});
            touch(
                o,
                attributed(ctx, BindingKind::OaScene, scene.as_deref(), v),
                "oa.subscribe",
                Trust::Wechat,
                at,
            );
        }
        EventBody::Unsubscribe => o.relations.push(RelationChange::Oa {
            app_id: app,
            subscribed: false,
            scene: None,
            at,
        }),
        EventBody::Scan { scene, .. } => touch(
            o,
            attributed(
                ctx,
                BindingKind::OaScene,
                Some(scene),
                json!({"channel": "oa_qrcode", "campaign": scene}),
            ),
            "oa.scan",
            Trust::Wechat,
            at,
        ),
        EventBody::ExternalContact(c) => {
            use ExternalContactChangeType::*;
            let change = match c.change_type {
                AddExternalContact | AddHalfExternalContact => {
                    let v = json!({"channel": "wecom", "campaign": c.state});
                    touch(
                        o,
                        attributed(ctx, BindingKind::WecomState, c.state.as_deref(), v),
                        "wecom.add_contact",
                        Trust::Wechat,
                        at,
                    );
                    Some(FollowChange::Added {
                        state: c.state.clone().filter(|s| !s.is_empty()),
                    })
                }
                EditExternalContact => Some(FollowChange::Details {
                    remark: None,
                    add_way: None,
                    state: None,
                    since: None,
                    corp_tags: None,
                }),
                DelExternalContact | DelFollowUser => Some(FollowChange::Deleted),
                TransferFail => None,
            };
            if let Some(change) = change {
                o.relations.push(RelationChange::Follow {
                    corp_id: app,
                    user_id: c.user_id.clone(),
                    change,
                    at,
                });
            }
        }
        _ => {}
    }
}

fn tracked(o: &mut Observations, t: &Tracked, at: DateTime<Utc>, ctx: &ObserveCtx) {
    let source = format!("track.{}", t.kind.as_str());
    if let Some(v) = fields::touch_from_properties(&t.properties) {
        let campaign = v
            .get("campaign")
            .and_then(Value::as_str)
            .map(str::to_string);
        let v = attributed(ctx, BindingKind::UtmCampaign, campaign.as_deref(), v);
        touch(o, v, &source, Trust::Observed, at);
    }
    if t.kind != TrackKind::FormSubmit {
        return;
    }
    for (key, raw) in &t.properties {
        if PHONE_KEYS.contains(&key.as_str()) {
            typed_phone(o, raw, &source, ctx);
        } else if EMAIL_KEYS.contains(&key.as_str()) {
            typed_email(o, raw, &source);
        } else if is_tracking_key(key) {
            continue;
        } else if fields::lookup(key, ctx.custom).is_some()
            || key.starts_with("custom.")
            || key.contains('.')
        {
            claim(o, key, raw, Trust::Typed, &source, at, ctx);
        }
        // Other plain keys are the form's own properties (kept on the event), not profile fields.
    }
}

fn is_tracking_key(k: &str) -> bool {
    k.starts_with("utm_") || k.starts_with("source.") || k == "source_levels"
}

fn typed_phone(o: &mut Observations, raw: &Value, source: &str, ctx: &ObserveCtx) {
    let Some(s) = raw.as_str().map(str::trim).filter(|s| !s.is_empty()) else {
        return;
    };
    match fields::normalise_phone(s, ctx.default_region) {
        Some((e164, cc)) => push_identifier(o, IdentifierKind::Phone, &cc, &e164),
        None => o.issues.push(Issue {
            field: "contact.phone".into(),
            value: super::pii::mask(IdentifierKind::Phone, s),
            reason: Rejection::InvalidPhone,
            source: source.to_string(),
        }),
    }
}

fn typed_email(o: &mut Observations, raw: &Value, source: &str) {
    let Some(s) = raw.as_str().map(str::trim).filter(|s| !s.is_empty()) else {
        return;
    };
    match normalise(IdentifierKind::Email, s) {
        Some(v) => push_identifier(o, IdentifierKind::Email, DEFAULT_NAMESPACE, &v),
        None => o.issues.push(Issue {
            field: "contact.email".into(),
            value: super::pii::mask(IdentifierKind::Email, s),
            reason: Rejection::InvalidEmail,
            source: source.to_string(),
        }),
    }
}

fn push_identifier(o: &mut Observations, kind: IdentifierKind, ns: &str, value: &str) {
    let identifier = Identifier::new(kind, ns, value);
    if !o.identifiers.iter().any(|f| f.identifier == identifier) {
        o.identifiers.push(Found {
            identifier,
            provenance: Provenance::Typed,
        });
    }
}

fn touch(o: &mut Observations, v: Value, source: &str, trust: Trust, at: DateTime<Utc>) {
    let Ok(Some(v)) = fields::clean(Kind::Touch, &v, at) else {
        return;
    };
    for field in ["source.first", "source.latest"] {
        o.claims.push(Claim {
            field: field.into(),
            value: v.clone(),
            trust,
            source: source.to_string(),
            at,
        });
    }
}

fn claim(
    o: &mut Observations,
    key: &str,
    raw: &Value,
    trust: Trust,
    source: &str,
    at: DateTime<Utc>,
    ctx: &ObserveCtx,
) {
    let refuse = |o: &mut Observations, field: &str, reason| {
        o.issues.push(Issue {
            field: field.to_string(),
            value: cut(raw),
            reason,
            source: source.to_string(),
        })
    };
    let Some((field, kind)) = fields::lookup(key, ctx.custom) else {
        return refuse(o, key, Rejection::UnknownField);
    };
    if matches!(kind, Kind::Touch) {
        // Touches come from tracking parameters, not from typed values.
        return refuse(o, &field, Rejection::UnknownField);
    }
    match fields::clean(kind, raw, ctx.now).and_then(|v| match v {
        Some(v) => fields::plausible(&field, &v, ctx.now).map(|()| Some(v)),
        None => Ok(None),
    }) {
        Ok(Some(value)) => o.claims.push(Claim {
            field,
            value,
            trust,
            source: source.to_string(),
            at,
        }),
        Ok(None) => {}
        Err(reason) => refuse(o, &field, reason),
    }
}

fn cut(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    s.chars().take(64).collect()
}

/// Customer-group membership changes of a WeCom `change_external_chat` event, if it is one.
pub fn group_change(env: &Envelope) -> Option<GroupChange> {
    let cb: CallbackReceived = env.payload_as().ok()?;
    let EventBody::ExternalChat(c) = &cb.event.body else {
        return None;
    };
    // Only external members are customers; corp members (reps) have plain userids.
    let external: Vec<String> = c
        .mem_change_list
        .iter()
        .filter(|m| m.starts_with("wm") || m.starts_with("wo"))
        .cloned()
        .collect();
    let mut g = GroupChange {
        corp_id: cb.app_id,
        chat_id: c.chat_id.clone(),
        joined: Vec::new(),
        left: Vec::new(),
        dismissed: false,
        at: env.occurred_at,
    };
    match (c.change_type, c.update_detail.as_deref()) {
        (ExternalChatChangeType::Dismiss, _) => g.dismissed = true,
        (ExternalChatChangeType::Update, Some("add_member")) => g.joined = external,
        (ExternalChatChangeType::Update, Some("del_member")) => g.left = external,
        _ => return None,
    }
    (g.dismissed || !g.joined.is_empty() || !g.left.is_empty()).then_some(g)
}

/// Whether WeChat's APIs can say more about `env`'s subject than the event carries: an Official
/// Account follow or QR scan (`user/info`: unionid, language) or a WeCom customer added or edited
/// (`externalcontact/get`: unionid, name, avatar, the rep's remark, add way, state, corp tags).
pub fn wants_lookup(env: &Envelope) -> bool {
    let Ok(cb) = env.payload_as::<CallbackReceived>() else {
        return false;
    };
    match &cb.event.body {
        EventBody::Subscribe { .. } | EventBody::Scan { .. } => true,
        EventBody::ExternalContact(c) => matches!(
            c.change_type,
            ExternalContactChangeType::AddExternalContact
                | ExternalContactChangeType::AddHalfExternalContact
                | ExternalContactChangeType::EditExternalContact
        ),
        _ => false,
    }
}

/// The app (OA / mini-program appid, WeCom corpid) that received a callback.
pub fn event_app(env: &Envelope) -> Option<String> {
    env.payload_as::<CallbackReceived>()
        .ok()
        .map(|cb| cb.app_id)
}

/// The QR scene or contact-me `state` an event came through (OA subscribe / scan, WeCom add),
/// which may be a personalised binding code.
pub fn entry_code(env: &Envelope) -> Option<String> {
    let cb: CallbackReceived = env.payload_as().ok()?;
    match cb.event.body {
        EventBody::Subscribe { scene, .. } => scene,
        EventBody::Scan { scene, .. } => Some(scene),
        EventBody::ExternalContact(c)
            if matches!(
                c.change_type,
                ExternalContactChangeType::AddExternalContact
                    | ExternalContactChangeType::AddHalfExternalContact
            ) =>
        {
            c.state
        }
        _ => None,
    }
}

/// Enrichment from OA `user/info` answer fields (already fetched by the caller).
pub fn enriched_oa(unionid: Option<&str>, language: Option<&str>) -> Enriched {
    let mut fields = Vec::new();
    if let Some(l) = language.filter(|l| !l.is_empty()) {
        fields.push(("contact.language".to_string(), json!(l)));
    }
    Enriched {
        unionid: unionid.filter(|u| !u.is_empty()).map(str::to_string),
        fields,
        follow: None,
        source: "oa.user_info".into(),
    }
}

/// Unix seconds to a time (WeChat's `createtime`, `subscribe_time`).
pub fn unix(secs: i64) -> Option<DateTime<Utc>> {
    (secs > 0)
        .then(|| Utc.timestamp_opt(secs, 0).single())
        .flatten()
}

/// Field values WeCom's `externalcontact/get` states: name, avatar, gender, company, role.
pub fn wecom_contact_fields(
    name: &str,
    avatar: Option<&str>,
    gender: i32,
    corp: Option<&str>,
    position: Option<&str>,
) -> Vec<(String, Value)> {
    let mut out: BTreeMap<&str, Value> = BTreeMap::new();
    out.insert("contact.name", json!(name));
    if let Some(a) = avatar {
        out.insert("contact.avatar", json!(a));
    }
    if gender > 0 {
        out.insert("contact.gender", json!(gender));
    }
    if let Some(c) = corp {
        out.insert("company.name", json!(c));
    }
    if let Some(p) = position {
        out.insert("company.role", json!(p));
    }
    out.into_iter()
        .filter(|(_, v)| !v.as_str().is_some_and(|s| s.trim().is_empty()))
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

#[cfg(test)]
mod tests;
