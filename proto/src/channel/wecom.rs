//! WeCom change events: customer contacts (`change_external_contact`), customer group chats
//! (`change_external_chat`) and corp customer tags (`change_external_tag`), each with its
//! `ChangeType`.

use serde::{Deserialize, Serialize};

/// `ChangeType` of WeCom `change_external_contact`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalContactChangeType {
    /// A rep added a customer (or the customer added the rep with verification).
    AddExternalContact,
    /// A rep edited the customer's remark etc.
    EditExternalContact,
    /// The customer added a rep who has not accepted yet (no verification).
    AddHalfExternalContact,
    /// The rep deleted the customer (`Source` = `DELETE_BY_TRANSFER` when by transfer).
    DelExternalContact,
    /// The customer deleted the rep.
    DelFollowUser,
    /// An inheritance transfer failed (`FailReason`).
    TransferFail,
}

impl ExternalContactChangeType {
    /// All values, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::AddExternalContact,
        Self::EditExternalContact,
        Self::AddHalfExternalContact,
        Self::DelExternalContact,
        Self::DelFollowUser,
        Self::TransferFail,
    ];

    /// The WeChat `ChangeType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AddExternalContact => "add_external_contact",
            Self::EditExternalContact => "edit_external_contact",
            Self::AddHalfExternalContact => "add_half_external_contact",
            Self::DelExternalContact => "del_external_contact",
            Self::DelFollowUser => "del_follow_user",
            Self::TransferFail => "transfer_fail",
        }
    }

    /// Parses a `ChangeType` (ASCII case-insensitive); `None` for one not modelled.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// WeCom `change_external_contact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalContactChange {
    /// `ChangeType`.
    pub change_type: ExternalContactChangeType,
    /// `UserID`: the rep (corp member).
    pub user_id: String,
    /// `ExternalUserID`: the customer.
    pub external_user_id: String,
    /// `State`: the `state` of the contact-me QR code (add / add_half only).
    pub state: Option<String>,
    /// `WelcomeCode`: usable once within 20 s for `send_welcome_msg` (add / add_half only).
    pub welcome_code: Option<String>,
    /// `Source` (del_external_contact), e.g. `DELETE_BY_TRANSFER`.
    pub source: Option<String>,
    /// `FailReason` (transfer_fail): `customer_refused`, `customer_limit_exceed`.
    pub fail_reason: Option<String>,
}

/// `ChangeType` of WeCom `change_external_chat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalChatChangeType {
    Create,
    Update,
    Dismiss,
}

impl ExternalChatChangeType {
    /// All values, in declaration order.
    pub const ALL: [Self; 3] = [Self::Create, Self::Update, Self::Dismiss];

    /// The WeChat `ChangeType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Dismiss => "dismiss",
        }
    }

    /// Parses a `ChangeType` (ASCII case-insensitive); `None` for one not modelled.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// WeCom `change_external_chat` (a customer group chat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalChatChange {
    /// `ChangeType`.
    pub change_type: ExternalChatChangeType,
    /// `ChatId`.
    pub chat_id: String,
    /// `UpdateDetail` (update only): `add_member`, `del_member`, `change_owner`, `change_name`,
    /// `change_notice`.
    pub update_detail: Option<String>,
    /// `JoinScene` (add_member): 0 invited, 3 scanned the group QR code.
    pub join_scene: Option<u32>,
    /// `QuitScene` (del_member): 0 left, 1 removed.
    pub quit_scene: Option<u32>,
    /// `MemChangeCnt`.
    pub mem_change_cnt: Option<u32>,
    /// `MemChangeList/Item`: the userids / external_userids that joined or left.
    #[serde(default)]
    pub mem_change_list: Vec<String>,
    /// `LastMemVer`: member-list version before the change.
    pub last_mem_ver: Option<String>,
    /// `CurMemVer`: member-list version after the change.
    pub cur_mem_ver: Option<String>,
}

/// `ChangeType` of WeCom `change_external_tag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalTagChangeType {
    Create,
    Update,
    Delete,
    Shuffle,
}

impl ExternalTagChangeType {
    /// All values, in declaration order.
    pub const ALL: [Self; 4] = [Self::Create, Self::Update, Self::Delete, Self::Shuffle];

    /// The WeChat `ChangeType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Shuffle => "shuffle",
        }
    }

    /// Parses a `ChangeType` (ASCII case-insensitive); `None` for one not modelled.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// WeCom `change_external_tag` (corp customer tags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalTagChange {
    /// `ChangeType`.
    pub change_type: ExternalTagChangeType,
    /// `Id`: the tag or tag-group id (for shuffle: the group id, or empty for all groups).
    pub id: String,
    /// `TagType`: `tag` or `tag_group` (absent for shuffle).
    pub tag_type: Option<String>,
    /// `StrategyId`: the rule-group id for rule-group tags.
    pub strategy_id: Option<u64>,
}
