//! WeChat's natural key of a [`ChannelEvent`] ([`ChannelEvent::dedupe_key`]) and the injective
//! key builder behind it.

use std::fmt::Write as _;

use uuid::Uuid;

use super::*;

/// Namespace of the digest over an unknown event's fields; fixed forever so keys stay stable.
const UNKNOWN_DIGEST_NAMESPACE: Uuid = Uuid::from_bytes([
    0x2c, 0x8a, 0x51, 0xe4, 0x07, 0x6b, 0x4f, 0x3d, 0x9e, 0x12, 0xb7, 0x40, 0x5a, 0xc3, 0x68, 0x1f,
]);

impl ChannelEvent {
    /// WeChat's natural key for this fact: the routing key, then `|`-separated components in
    /// which `%`, `|` and `~` are percent-escaped and an absent value is `~`, so distinct
    /// component lists never produce the same string.
    ///
    /// - messages: `ToUserName`, `FromUserName`, `MsgId`;
    /// - OA/MP events: `ToUserName`, `FromUserName`, `CreateTime`, then the event's own fields
    ///   (scene and ticket, menu key, URL, coordinates, `MsgID` and status, every list item…);
    /// - WeCom change events (`FromUserName` is `sys`): `ToUserName`, `FromUserName`,
    ///   `CreateTime`, then `UserID`, `ExternalUserID`, `State`, `WelcomeCode`, `Source`,
    ///   `FailReason` / `ChatId`, `UpdateDetail`, scenes, member changes and versions / `Id`,
    ///   `TagType`, `StrategyId`;
    /// - unknown events: `ToUserName`, `FromUserName`, `CreateTime`, `MsgType`, `Event`,
    ///   `ChangeType` and a SHA-1-based digest of all sorted fields.
    pub fn dedupe_key(&self) -> String {
        let mut k = KeyBuilder::new(self.event_type());
        k.put(&self.to_user_name).put(&self.from_user_name);
        if let EventBody::Message(m) = &self.body {
            k.put(&m.msg_id.to_string());
            return k.finish();
        }
        k.put(&self.create_time.to_string());
        match &self.body {
            EventBody::Subscribe { scene, ticket } => {
                k.opt(scene.as_deref()).opt(ticket.as_deref());
            }
            EventBody::Unsubscribe => {}
            EventBody::Scan { scene, ticket } => {
                k.put(scene).opt(ticket.as_deref());
            }
            EventBody::Click { key } => {
                k.put(key);
            }
            EventBody::View { url, menu_id } => {
                k.put(url).opt(menu_id.as_deref());
            }
            EventBody::Location {
                latitude,
                longitude,
                precision,
            } => {
                k.num(latitude).num(longitude).num(precision);
            }
            EventBody::TemplateSendJobFinish { msg_id, status } => {
                k.num(msg_id).put(status);
            }
            EventBody::MassSendJobFinish {
                msg_id,
                status,
                total_count,
                filter_count,
                sent_count,
                error_count,
            } => {
                k.num(msg_id)
                    .put(status)
                    .opt_num(total_count)
                    .opt_num(filter_count)
                    .opt_num(sent_count)
                    .opt_num(error_count);
            }
            EventBody::SubscribeMsgPopup { items } => {
                k.num(&items.len());
                for i in items {
                    k.put(&i.template_id)
                        .put(&i.status)
                        .opt(i.popup_scene.as_deref());
                }
            }
            EventBody::SubscribeMsgChange { items } => {
                k.num(&items.len());
                for i in items {
                    k.put(&i.template_id).put(&i.status);
                }
            }
            EventBody::SubscribeMsgSent { items } => {
                k.num(&items.len());
                for i in items {
                    k.put(&i.template_id)
                        .opt_num(&i.msg_id)
                        .opt_num(&i.error_code)
                        .opt(i.error_status.as_deref());
                }
            }
            EventBody::UserEnterTempsession { session_from } => {
                k.opt(session_from.as_deref());
            }
            EventBody::ExternalContact(c) => {
                k.put(&c.user_id)
                    .put(&c.external_user_id)
                    .opt(c.state.as_deref())
                    .opt(c.welcome_code.as_deref())
                    .opt(c.source.as_deref())
                    .opt(c.fail_reason.as_deref());
            }
            EventBody::ExternalChat(c) => {
                k.put(&c.chat_id)
                    .opt(c.update_detail.as_deref())
                    .opt_num(&c.join_scene)
                    .opt_num(&c.quit_scene)
                    .opt_num(&c.mem_change_cnt)
                    .num(&c.mem_change_list.len());
                for m in &c.mem_change_list {
                    k.put(m);
                }
                k.opt(c.last_mem_ver.as_deref())
                    .opt(c.cur_mem_ver.as_deref());
            }
            EventBody::ExternalTag(c) => {
                k.put(&c.id)
                    .opt(c.tag_type.as_deref())
                    .opt_num(&c.strategy_id);
            }
            EventBody::Unknown {
                msg_type,
                event,
                change_type,
                fields,
            } => {
                let mut all = KeyBuilder::empty();
                all.num(&fields.len());
                for (name, value) in fields {
                    all.put(name).put(value);
                }
                let digest = Uuid::new_v5(&UNKNOWN_DIGEST_NAMESPACE, all.finish().as_bytes());
                k.put(msg_type)
                    .opt(event.as_deref())
                    .opt(change_type.as_deref())
                    .put(&digest.simple().to_string());
            }
            // Handled above.
            EventBody::Message(_) => {}
        }
        k.finish()
    }
}

/// Builds an injective `|`-separated key.
struct KeyBuilder {
    out: String,
    /// Whether a component has been written (the next one needs a separator).
    started: bool,
}

impl KeyBuilder {
    /// Starts with `first` as the first component, written verbatim.
    fn new(first: String) -> Self {
        KeyBuilder {
            out: first,
            started: true,
        }
    }

    /// Starts with no component.
    fn empty() -> Self {
        KeyBuilder {
            out: String::new(),
            started: false,
        }
    }

    fn sep(&mut self) {
        if self.started {
            self.out.push('|');
        }
        self.started = true;
    }

    /// A present value, escaped.
    fn put(&mut self, value: &str) -> &mut Self {
        self.sep();
        for ch in value.chars() {
            match ch {
                '%' => self.out.push_str("%25"),
                '|' => self.out.push_str("%7C"),
                '~' => self.out.push_str("%7E"),
                c => self.out.push(c),
            }
        }
        self
    }

    /// An optional value: `~` when absent.
    fn opt(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.put(v),
            None => {
                self.sep();
                self.out.push('~');
                self
            }
        }
    }

    /// A number (its `Display` form never contains a reserved character).
    fn num<T: std::fmt::Display>(&mut self, value: &T) -> &mut Self {
        self.sep();
        // Writing into a String cannot fail.
        let _ = write!(self.out, "{value}");
        self
    }

    fn opt_num<T: std::fmt::Display>(&mut self, value: &Option<T>) -> &mut Self {
        match value {
            Some(v) => self.num(v),
            None => self.opt(None),
        }
    }

    fn finish(&mut self) -> String {
        std::mem::take(&mut self.out)
    }
}
