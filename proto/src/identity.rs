//! Identity contracts (DESIGN.md §5): identifiers, how they were linked, and the events
//! identity-svc announces after resolving a channel event to a customer profile.
//!
//! Routing keys: [`PROFILE_RESOLVED`], [`IDENTITY_MERGED`], [`IDENTITY_UNMERGED`],
//! [`PROFILE_UPDATED`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::Envelope;

/// Routing key of [`ProfileResolved`].
pub const PROFILE_RESOLVED: &str = "profile.resolved";
/// Routing key of [`IdentityMerged`].
pub const IDENTITY_MERGED: &str = "identity.merged";
/// Routing key of [`IdentityUnmerged`].
pub const IDENTITY_UNMERGED: &str = "identity.unmerged";
/// Routing key of [`ProfileUpdated`].
pub const PROFILE_UPDATED: &str = "profile.updated";

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
}

impl LinkRule {
    pub const ALL: [LinkRule; 5] = [
        LinkRule::NewProfile,
        LinkRule::SameEvent,
        LinkRule::Unionid,
        LinkRule::VerifiedPhone,
        LinkRule::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkRule::NewProfile => "new_profile",
            LinkRule::SameEvent => "same_event",
            LinkRule::Unionid => "unionid",
            LinkRule::VerifiedPhone => "verified_phone",
            LinkRule::Manual => "manual",
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// `profile.updated`: facts about a profile changed (field name → new value; identifiers as
/// `identifiers.<kind>`). Sensitive values are masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileUpdated {
    pub profile_id: String,
    pub changed: std::collections::BTreeMap<String, serde_json::Value>,
    /// Message id of the event that caused the change, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause_event: Option<Uuid>,
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
