//! WeCom messages: customer contacts added, edited, deleted and transferred
//! (`change_external_contact`), customer group chats (`change_external_chat`) and the corp tag
//! library (`change_external_tag`).

use super::{cdata, nonce, CallbackBuilder};

impl CallbackBuilder<'_> {
    fn wecom_event(&self, event: &str, change_type: &str, rest: &str) -> String {
        self.envelope(
            "sys",
            "event",
            &format!(
                "<Event>{}</Event><ChangeType>{}</ChangeType>{rest}",
                cdata(event),
                cdata(change_type)
            ),
        )
    }

    fn contact_fields(userid: &str, external_userid: &str) -> String {
        format!(
            "<UserID>{}</UserID><ExternalUserID>{}</ExternalUserID>",
            cdata(userid),
            cdata(external_userid)
        )
    }

    fn welcome_code() -> String {
        format!("WELCOMECODE{}", nonce())
    }

    /// A rep added a customer (`State` when through a contact-me QR code).
    pub fn add_external_contact(
        &self,
        userid: &str,
        external_userid: &str,
        state: Option<&str>,
    ) -> String {
        let state = state
            .map(|s| format!("<State>{}</State>", cdata(s)))
            .unwrap_or_default();
        self.wecom_event(
            "change_external_contact",
            "add_external_contact",
            &format!(
                "{}{state}<WelcomeCode>{}</WelcomeCode>",
                Self::contact_fields(userid, external_userid),
                cdata(&Self::welcome_code())
            ),
        )
    }

    /// A customer added a rep without verification.
    pub fn add_half_external_contact(
        &self,
        userid: &str,
        external_userid: &str,
        state: Option<&str>,
    ) -> String {
        let state = state
            .map(|s| format!("<State>{}</State>", cdata(s)))
            .unwrap_or_default();
        self.wecom_event(
            "change_external_contact",
            "add_half_external_contact",
            &format!(
                "{}{state}<WelcomeCode>{}</WelcomeCode>",
                Self::contact_fields(userid, external_userid),
                cdata(&Self::welcome_code())
            ),
        )
    }

    /// A rep edited a customer.
    pub fn edit_external_contact(&self, userid: &str, external_userid: &str) -> String {
        self.wecom_event(
            "change_external_contact",
            "edit_external_contact",
            &Self::contact_fields(userid, external_userid),
        )
    }

    /// A rep deleted a customer (`Source` = `DELETE_BY_TRANSFER` after a transfer).
    pub fn del_external_contact(
        &self,
        userid: &str,
        external_userid: &str,
        source: Option<&str>,
    ) -> String {
        let source = source
            .map(|s| format!("<Source>{}</Source>", cdata(s)))
            .unwrap_or_default();
        self.wecom_event(
            "change_external_contact",
            "del_external_contact",
            &format!("{}{source}", Self::contact_fields(userid, external_userid)),
        )
    }

    /// A customer deleted a rep.
    pub fn del_follow_user(&self, userid: &str, external_userid: &str) -> String {
        self.wecom_event(
            "change_external_contact",
            "del_follow_user",
            &Self::contact_fields(userid, external_userid),
        )
    }

    /// A transfer of a customer failed (`customer_refused` / `customer_limit_exceed`).
    pub fn transfer_fail(&self, userid: &str, external_userid: &str, reason: &str) -> String {
        self.wecom_event(
            "change_external_contact",
            "transfer_fail",
            &format!(
                "{}<FailReason>{}</FailReason>",
                Self::contact_fields(userid, external_userid),
                cdata(reason)
            ),
        )
    }

    /// A customer group chat was created.
    pub fn external_chat_create(&self, chat_id: &str) -> String {
        self.wecom_event(
            "change_external_chat",
            "create",
            &format!("<ChatId>{}</ChatId>", cdata(chat_id)),
        )
    }

    /// A customer group chat was dismissed.
    pub fn external_chat_dismiss(&self, chat_id: &str) -> String {
        self.wecom_event(
            "change_external_chat",
            "dismiss",
            &format!("<ChatId>{}</ChatId>", cdata(chat_id)),
        )
    }

    /// Members joined a customer group chat (`join_scene` 0 invited, 3 scanned the group QR).
    pub fn external_chat_add_member(
        &self,
        chat_id: &str,
        join_scene: u32,
        members: &[&str],
    ) -> String {
        self.external_chat_members(chat_id, "add_member", "JoinScene", join_scene, members)
    }

    /// Members left a customer group chat (`quit_scene` 0 left, 1 removed).
    pub fn external_chat_del_member(
        &self,
        chat_id: &str,
        quit_scene: u32,
        members: &[&str],
    ) -> String {
        self.external_chat_members(chat_id, "del_member", "QuitScene", quit_scene, members)
    }

    fn external_chat_members(
        &self,
        chat_id: &str,
        detail: &str,
        scene_tag: &str,
        scene: u32,
        members: &[&str],
    ) -> String {
        let items: String = members
            .iter()
            .map(|m| format!("<Item>{}</Item>", cdata(m)))
            .collect();
        self.wecom_event(
            "change_external_chat",
            "update",
            &format!(
                "<ChatId>{}</ChatId><UpdateDetail>{}</UpdateDetail><{scene_tag}>{scene}</{scene_tag}><MemChangeCnt>{}</MemChangeCnt><MemChangeList>{items}</MemChangeList><LastMemVer>{}</LastMemVer><CurMemVer>{}</CurMemVer>",
                cdata(chat_id),
                cdata(detail),
                members.len(),
                cdata("9c3f97c2ada667dfb5f6d03308d963e1"),
                cdata("71217227bbd112ecfe3a49c482195cb4"),
            ),
        )
    }

    /// A corp tag or tag group changed (`change_type` create / update / delete; `tag_type`
    /// `tag` or `tag_group`).
    pub fn external_tag(&self, id: &str, tag_type: &str, change_type: &str) -> String {
        self.wecom_event(
            "change_external_tag",
            change_type,
            &format!(
                "<Id>{}</Id><TagType>{}</TagType>",
                cdata(id),
                cdata(tag_type)
            ),
        )
    }
}
