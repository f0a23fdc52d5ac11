//! Identity contracts (DESIGN.md §5): identifiers, how they were linked, and the events
//! identity-svc announces after resolving a channel event to a customer profile.
//!
//! Routing keys: [`PROFILE_RESOLVED`], [`IDENTITY_MERGED`], [`IDENTITY_UNMERGED`],
//! [`PROFILE_UPDATED`]; inside identity-svc, [`ENRICH_REQUESTED`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::Envelope;
use crate::event::Event;

/// Routing key of [`ProfileResolved`].
pub const PROFILE_RESOLVED: &str = ProfileResolved::TYPE;
/// Routing key of [`IdentityMerged`].
pub const IDENTITY_MERGED: &str = IdentityMerged::TYPE;
/// Routing key of [`IdentityUnmerged`].
pub const IDENTITY_UNMERGED: &str = IdentityUnmerged::TYPE;
/// Routing key of [`ProfileUpdated`].
pub const PROFILE_UPDATED: &str = ProfileUpdated::TYPE;
/// Routing key of [`EnrichRequested`].
pub const ENRICH_REQUESTED: &str = EnrichRequested::TYPE;

/// `identity.enrich`: a resolved channel event whose subject WeChat's APIs can say more about
/// (OA `user/info`, WeCom `externalcontact/get`). identity-svc enqueues it with the resolution and
/// looks the subject up beside the event's path; what WeChat answers is applied to the profile
/// as if the event had carried it. Read only by identity-svc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichRequested {
    /// The channel event, unchanged.
    pub event: Envelope,
}

impl Event for EnrichRequested {
    const TYPE: &'static str = "identity.enrich";
}

/// Namespace of identifiers that have no natural one (a unionid whose Open Platform account is not
/// known, a web cookie).
pub const DEFAULT_NAMESPACE: &str = "default";

/// What an identifier is. The namespace it lives in depends on the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKind {
    /// Official Account openid; namespace = the OA appid.
    OaOpenid,
    /// Mini-program openid; namespace = the MP appid.
    MpOpenid,
    /// WeCom external contact id; namespace = the corpid.
    WecomExternalUserid,
    /// WeChat UnionID; namespace = the Open Platform account, or [`DEFAULT_NAMESPACE`].
    Unionid,
    /// Phone number in E.164; namespace = the country calling code without `+` (e.g. `86`).
    Phone,
    /// E-mail address (lower-cased); namespace = [`DEFAULT_NAMESPACE`].
    Email,
    /// Device / cookie id of a web or H5 visitor; namespace = [`DEFAULT_NAMESPACE`] or the site.
    WebCookie,
    /// Id in the tenant's CRM; namespace = the CRM system name.
    CrmId,
}

impl IdentifierKind {
    /// Every kind, in declaration order.
    pub const ALL: [IdentifierKind; 8] = [
        IdentifierKind::OaOpenid,
        IdentifierKind::MpOpenid,
        IdentifierKind::WecomExternalUserid,
        IdentifierKind::Unionid,
        IdentifierKind::Phone,
        IdentifierKind::Email,
        IdentifierKind::WebCookie,
        IdentifierKind::CrmId,
    ];

    /// The stored / wire name, e.g. `oa_openid`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::OaOpenid => "oa_openid",
            IdentifierKind::MpOpenid => "mp_openid",
            IdentifierKind::WecomExternalUserid => "wecom_external_userid",
            IdentifierKind::Unionid => "unionid",
            IdentifierKind::Phone => "phone",
            IdentifierKind::Email => "email",
            IdentifierKind::WebCookie => "web_cookie",
            IdentifierKind::CrmId => "crm_id",
        }
    }

    /// Parses a stored / wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Direct personal identifiers: stored as a keyed hash plus an encrypted value, masked in
    /// API responses and events (DESIGN.md §9).
    pub fn is_sensitive(self) -> bool {
        matches!(self, IdentifierKind::Phone | IdentifierKind::Email)
    }
}

impl std::fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One identifier of a person.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    pub kind: IdentifierKind,
    pub namespace: String,
    /// The value; masked (e.g. `+86138****8000`) wherever it leaves identity-svc for a sensitive
    /// kind.
    pub value: String,
}

impl Identifier {
    pub fn new(
        kind: IdentifierKind,
        namespace: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        Identifier {
            kind,
            namespace: namespace.into(),
            value: value.into(),
        }
    }
}

/// Where an identifier's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provenance {
    /// Asserted by a WeChat server callback or API (openids, external_userids, unionids).
    Wechat,
    /// Phone verified by WeChat through the mini-program phone button.
    VerifiedMp,
    /// Typed by the person (forms).
    Typed,
    /// Bulk import.
    Imported,
    /// Seen by the tracking SDK (cookies).
    Tracked,
}

impl Provenance {
    pub const ALL: [Provenance; 5] = [
        Provenance::Wechat,
        Provenance::VerifiedMp,
        Provenance::Typed,
        Provenance::Imported,
        Provenance::Tracked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Wechat => "wechat",
            Provenance::VerifiedMp => "verified_mp",
            Provenance::Typed => "typed",
            Provenance::Imported => "imported",
            Provenance::Tracked => "tracked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Why two identifiers (or profiles) were linked — the `rule` of an edge, a merge or a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkRule {
    /// The first identifier of a new profile.
    NewProfile,
    /// Identifiers carried by one event about one person (attached to the profile found).
    SameEvent,
    /// Same UnionID of one Open Platform namespace.
    Unionid,
    /// A phone number verified by WeChat.
    VerifiedPhone,
    /// An operator's decision.
    Manual,
    /// A personalised QR code / contact-me link (千人千面码) that names a known profile.
    ExplicitBinding,
}

impl LinkRule {
    pub const ALL: [LinkRule; 6] = [
        LinkRule::NewProfile,
        LinkRule::SameEvent,
        LinkRule::Unionid,
        LinkRule::VerifiedPhone,
        LinkRule::Manual,
        LinkRule::ExplicitBinding,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkRule::NewProfile => "new_profile",
            LinkRule::SameEvent => "same_event",
            LinkRule::Unionid => "unionid",
            LinkRule::VerifiedPhone => "verified_phone",
            LinkRule::Manual => "manual",
            LinkRule::ExplicitBinding => "explicit_binding",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// `profile.resolved`: a channel event and the canonical profile it is about, for tagging and
/// scoring. Published once per resolved event (same message id on every redelivery).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileResolved {
    /// The canonical (surviving) profile id.
    pub profile_id: String,
    /// The profile was created by this event.
    #[serde(default)]
    pub created: bool,
    /// The original channel event, unchanged.
    pub event: Envelope,
    /// Identifiers the event carried (sensitive values masked).
    pub identifiers: Vec<Identifier>,
}

impl Event for ProfileResolved {
    const TYPE: &'static str = "profile.resolved";
}

/// `identity.merged`: profiles were absorbed into a survivor. Downstream services move what they
/// keep under the absorbed ids to the survivor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityMerged {
    pub survivor: String,
    pub absorbed: Vec<String>,
    pub rule: LinkRule,
    /// Message id of the event that proved the link (`None` for a manual merge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_event: Option<Uuid>,
    /// Who merged them (manual merges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

impl Event for IdentityMerged {
    const TYPE: &'static str = "identity.merged";
}

/// How profiles were separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmergeKind {
    /// A merge was retracted: the absorbed profile is active again.
    Unmerge,
    /// One identifier was taken off a profile into a new one.
    Split,
}

impl UnmergeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UnmergeKind::Unmerge => "unmerge",
            UnmergeKind::Split => "split",
        }
    }
}

/// `identity.unmerged`: an operator separated profiles. `restored` are active again (or new, for
/// a split) and hold `identifiers`; events and facts of those identifiers belong to them again.
/// Downstream services recompute what they keep for `survivor` and `restored`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityUnmerged {
    pub kind: UnmergeKind,
    pub survivor: String,
    pub restored: Vec<String>,
    /// Identifiers that moved from `survivor` to `restored` (sensitive values masked).
    pub identifiers: Vec<Identifier>,
    /// The retracted merge (for [`UnmergeKind::Unmerge`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_id: Option<i64>,
    pub operator: String,
    pub reason: String,
    /// Message ids of the events (timeline entries) of `identifiers`: they belong to `restored`
    /// again, whichever profile they were resolved to, so a service that keeps per-event effects
    /// (behaviour counts, score ledgers) and moved them to `survivor` on the merge moves exactly
    /// those back.
    #[serde(default)]
    pub moved_events: Vec<Uuid>,
    /// The state of `survivor` and of each `restored` profile after the separation, whole (the
    /// `profile.updated` of each, also when its state did not change: a projection dropped the
    /// absorbed profile's state with the merge), so a service applies the separation on complete
    /// facts instead of the merged ones until those messages arrive.
    #[serde(default)]
    pub states: Vec<ProfileUpdated>,
}

impl Event for IdentityUnmerged {
    const TYPE: &'static str = "identity.unmerged";
}

/// `profile.updated`: the profile's derived state after a change. Each message carries the whole
/// current state (fields and relationships), not a diff, so a projection replaces what it holds for
/// the profile when `version` is newer than the version it holds, and ignores the message
/// otherwise: redelivery and reordering are harmless.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileUpdated {
    pub profile_id: String,
    /// Grows with every change of the profile (fields, relationships, merges, un-merges).
    pub version: i64,
    /// Keys of `fields` that were added, changed or removed by this update, and `relations.*`
    /// (`relations.oa`, `relations.wecom`, `relations.groups`) when relationship state changed.
    #[serde(default)]
    pub changed: Vec<String>,
    /// Every current field by dotted key: `contact.city`, `company.industry`, `needs.budget`,
    /// `preferences.channel`, `source.first.channel`, `source.latest.campaign`,
    /// `source.first.level3`, `custom.<name>`, … JSON strings, numbers and booleans; dates as
    /// `YYYY-MM-DD`, datetimes in RFC 3339 (UTC). Sensitive values (phone, e-mail) masked.
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, serde_json::Value>,
    /// Relationship state: subscriptions, WeCom follows, customer groups, reachability.
    #[serde(default)]
    pub relations: Relations,
    /// Message id of the event that caused the change, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause_event: Option<Uuid>,
}

impl Event for ProfileUpdated {
    const TYPE: &'static str = "profile.updated";
}

/// A customer's relationship state with the tenant's WeChat surfaces (DESIGN.md §5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relations {
    /// One entry per Official Account the customer ever followed.
    #[serde(default)]
    pub oa_subscriptions: Vec<OaSubscription>,
    /// One entry per (corp, rep) that ever added the customer as an external contact.
    #[serde(default)]
    pub wecom_follows: Vec<WecomFollow>,
    /// Customer groups (external group chats) the customer is in now.
    #[serde(default)]
    pub group_chats: Vec<GroupChatMembership>,
    /// Can the customer be messaged on each channel right now.
    #[serde(default)]
    pub reachable: Reachability,
}

/// Subscription to one Official Account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OaSubscription {
    pub app_id: String,
    pub subscribed: bool,
    /// The parametric QR scene of the (latest) follow, without `qrscene_`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene: Option<String>,
    /// When `subscribed` last changed.
    pub changed_at: chrono::DateTime<chrono::Utc>,
}

/// A WeCom rep's follow relationship with the customer (external contact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WecomFollow {
    pub corp_id: String,
    /// The rep's WeCom userid.
    pub user_id: String,
    /// The customer's external_userid in the corp (what WeCom's APIs, e.g. `mark_tag`, take).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_userid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// WeCom `add_way` (1 QR code, 2 phone search, … 202 shared by admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_way: Option<i64>,
    /// The `state` of the contact-me link / QR the customer came through (channel code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub added_at: chrono::DateTime<chrono::Utc>,
    /// Set when either side deleted the other; the follow is inactive then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The corp tags (WeCom tag ids, `type` 1) on the customer in this rep's view, as WeCom
    /// last reported them (`externalcontact/get`, read on every add / edit); `None` when not
    /// known yet. Personal and rule-group tags are not included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_tags: Option<Vec<String>>,
}

impl WecomFollow {
    /// Is the relationship in force now.
    pub fn is_active(&self) -> bool {
        self.deleted_at.is_none()
    }
}

/// Membership of one WeCom customer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupChatMembership {
    pub corp_id: String,
    pub chat_id: String,
    pub joined_at: chrono::DateTime<chrono::Utc>,
}

/// Whether the customer can be messaged now on each channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reachability {
    /// Follows at least one of the tenant's Official Accounts.
    #[serde(default)]
    pub oa: bool,
    /// Is an active external contact of at least one rep.
    #[serde(default)]
    pub wecom: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in IdentifierKind::ALL {
            assert_eq!(IdentifierKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for p in Provenance::ALL {
            assert_eq!(Provenance::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        for r in LinkRule::ALL {
            assert_eq!(LinkRule::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert!(IdentifierKind::Phone.is_sensitive());
        assert_eq!(
            serde_json::to_value(UnmergeKind::Split).unwrap(),
            UnmergeKind::Split.as_str()
        );
        assert!(!IdentifierKind::Unionid.is_sensitive());
    }
}
