//! Field mapping: a parsed body (XML or JSON, see `tree`) into a typed [`ChannelEvent`].
//!
//! Which events and message types are typed depends on the channel (protocol §A, §C, §D); any
//! other combination becomes [`EventBody::Unknown`] with every field kept. For a known type the
//! fields it needs must be present and well-formed, and extra elements are ignored.

use proto::channel::{
    Channel, ChannelEvent, EventBody, ExternalChatChange, ExternalChatChangeType,
    ExternalContactChange, ExternalContactChangeType, ExternalTagChange, ExternalTagChangeType,
    Message, MessageContent, SubscribeMsgChangeItem, SubscribeMsgPopupItem, SubscribeMsgSentItem,
};

use super::fields::{nested, Fields};
use super::tree::Node;
use super::CodecError;

/// Maps the root of a decrypted (or plain) callback into an event of `channel`.
pub(crate) fn to_event(channel: Channel, root: &Node) -> Result<ChannelEvent, CodecError> {
    let f = Fields::new(root);
    let to_user_name = f.non_empty("ToUserName")?;
    let from_user_name = f.non_empty("FromUserName")?;
    let create_time = f.timestamp("CreateTime")?;
    let msg_type = f.non_empty("MsgType")?;
    let typed = if msg_type.eq_ignore_ascii_case("event") {
        let event = f.non_empty("Event")?;
        event_body(channel, &f, &event)?
    } else {
        message_body(channel, &f, &msg_type)?
    };
    let body = match typed {
        Some(body) => body,
        None => EventBody::Unknown {
            msg_type,
            event: first_text(root, "Event"),
            change_type: first_text(root, "ChangeType"),
            fields: f.flatten(),
        },
    };
    Ok(ChannelEvent {
        channel,
        to_user_name,
        from_user_name,
        create_time,
        body,
    })
}

/// The first non-empty text of a top-level field, for the summary of an unknown event.
fn first_text(root: &Node, name: &str) -> Option<String> {
    root.children
        .iter()
        .find(|c| c.name == name && c.children.is_empty() && !c.text.is_empty())
        .map(|c| c.text.clone())
}

/// `MsgType` = `event`. `Ok(None)` when the event is not modelled for this channel.
fn event_body(
    channel: Channel,
    f: &Fields<'_>,
    event: &str,
) -> Result<Option<EventBody>, CodecError> {
    let event = event.to_ascii_lowercase();
    let body = match (channel, event.as_str()) {
        (Channel::Oa, "subscribe") => {
            let scene = match f.raw("EventKey")? {
                None | Some("") => None,
                Some(key) => Some(key.strip_prefix("qrscene_").unwrap_or(key).to_owned()),
            };
            EventBody::Subscribe {
                scene,
                ticket: f.opt_string("Ticket")?,
            }
        }
        (Channel::Oa, "unsubscribe") => EventBody::Unsubscribe,
        (Channel::Oa, "scan") => EventBody::Scan {
            scene: f.string("EventKey")?,
            ticket: f.opt_string("Ticket")?,
        },
        (Channel::Oa, "click") => EventBody::Click {
            key: f.string("EventKey")?,
        },
        (Channel::Oa, "view") => EventBody::View {
            url: f.string("EventKey")?,
            menu_id: f.opt_string("MenuId")?,
        },
        (Channel::Oa, "location") => EventBody::Location {
            latitude: f.f64("Latitude")?,
            longitude: f.f64("Longitude")?,
            precision: f.f64("Precision")?,
        },
        (Channel::Oa, "templatesendjobfinish") => EventBody::TemplateSendJobFinish {
            msg_id: f.u64("MsgID")?,
            status: f.string("Status")?,
        },
        (Channel::Oa, "masssendjobfinish") => EventBody::MassSendJobFinish {
            msg_id: f.u64("MsgID")?,
            status: f.string("Status")?,
            total_count: f.opt_u64("TotalCount")?,
            filter_count: f.opt_u64("FilterCount")?,
            sent_count: f.opt_u64("SentCount")?,
            error_count: f.opt_u64("ErrorCount")?,
        },
        (Channel::Oa | Channel::Mp, "subscribe_msg_popup_event") => EventBody::SubscribeMsgPopup {
            items: list_items(f, "SubscribeMsgPopupEvent", |item| {
                Ok(SubscribeMsgPopupItem {
                    template_id: item.non_empty("TemplateId")?,
                    status: item.string("SubscribeStatusString")?,
                    popup_scene: item.opt_string("PopupScene")?,
                })
            })?,
        },
        (Channel::Oa | Channel::Mp, "subscribe_msg_change_event") => {
            EventBody::SubscribeMsgChange {
                items: list_items(f, "SubscribeMsgChangeEvent", |item| {
                    Ok(SubscribeMsgChangeItem {
                        template_id: item.non_empty("TemplateId")?,
                        status: item.string("SubscribeStatusString")?,
                    })
                })?,
            }
        }
        (Channel::Oa | Channel::Mp, "subscribe_msg_sent_event") => EventBody::SubscribeMsgSent {
            items: list_items(f, "SubscribeMsgSentEvent", |item| {
                Ok(SubscribeMsgSentItem {
                    template_id: item.non_empty("TemplateId")?,
                    msg_id: item.opt_u64("MsgID")?,
                    error_code: item.opt_i64("ErrorCode")?,
                    error_status: item.opt_string("ErrorStatus")?,
                })
            })?,
        },
        (Channel::Mp, "user_enter_tempsession") => EventBody::UserEnterTempsession {
            session_from: f.opt_string("SessionFrom")?,
        },
        (Channel::WeCom, "change_external_contact") => {
            let change = f.non_empty("ChangeType")?;
            let Some(change_type) = ExternalContactChangeType::parse(&change) else {
                return Ok(None);
            };
            EventBody::ExternalContact(ExternalContactChange {
                change_type,
                user_id: f.non_empty("UserID")?,
                external_user_id: f.non_empty("ExternalUserID")?,
                state: f.opt_string("State")?,
                welcome_code: f.opt_string("WelcomeCode")?,
                source: f.opt_string("Source")?,
                fail_reason: f.opt_string("FailReason")?,
            })
        }
        (Channel::WeCom, "change_external_chat") => {
            let change = f.non_empty("ChangeType")?;
            let Some(change_type) = ExternalChatChangeType::parse(&change) else {
                return Ok(None);
            };
            EventBody::ExternalChat(ExternalChatChange {
                change_type,
                chat_id: f.non_empty("ChatId")?,
                update_detail: f.opt_string("UpdateDetail")?,
                join_scene: f.opt_u32("JoinScene")?,
                quit_scene: f.opt_u32("QuitScene")?,
                mem_change_cnt: f.opt_u32("MemChangeCnt")?,
                mem_change_list: member_list(f)?,
                last_mem_ver: f.opt_string("LastMemVer")?,
                cur_mem_ver: f.opt_string("CurMemVer")?,
            })
        }
        (Channel::WeCom, "change_external_tag") => {
            let change = f.non_empty("ChangeType")?;
            let Some(change_type) = ExternalTagChangeType::parse(&change) else {
                return Ok(None);
            };
            // `shuffle` of every tag group comes without an id.
            let id = match change_type {
                ExternalTagChangeType::Shuffle => f.raw("Id")?.unwrap_or_default().to_owned(),
                _ => f.non_empty("Id")?,
            };
            EventBody::ExternalTag(ExternalTagChange {
                change_type,
                id,
                tag_type: f.opt_string("TagType")?,
                strategy_id: f.opt_u64("StrategyId")?,
            })
        }
        _ => return Ok(None),
    };
    Ok(Some(body))
}

/// The `List` entries of a subscribe-message event: inside `<container>` (XML, and JSON that
/// mirrors it) or at the top level (mini-program JSON). One entry or several; at least one.
fn list_items<T>(
    f: &Fields<'_>,
    container: &str,
    item: impl Fn(&Fields<'_>) -> Result<T, CodecError>,
) -> Result<Vec<T>, CodecError> {
    let (prefix, nodes): (String, Vec<&Node>) = match f.node(container)? {
        Some(node) => (
            format!("{container}/List"),
            Fields::new(node).all("List").collect(),
        ),
        None => ("List".to_owned(), f.all("List").collect()),
    };
    if nodes.is_empty() {
        return Err(CodecError::MissingField(prefix));
    }
    let several = nodes.len() > 1;
    nodes
        .into_iter()
        .enumerate()
        .map(|(i, node)| {
            let path = if several {
                format!("{prefix}[{i}]")
            } else {
                prefix.clone()
            };
            nested(&path, item(&Fields::new(node)))
        })
        .collect()
}

/// `MemChangeList/Item[]` of `change_external_chat`; absent means no member changed.
fn member_list(f: &Fields<'_>) -> Result<Vec<String>, CodecError> {
    let Some(list) = f.node("MemChangeList")? else {
        return Ok(Vec::new());
    };
    Fields::new(list)
        .all("Item")
        .enumerate()
        .map(|(i, item)| {
            if item.children.is_empty() {
                Ok(item.text.clone())
            } else {
                Err(CodecError::NotText(format!("MemChangeList/Item[{i}]")))
            }
        })
        .collect()
}

/// A user message. `Ok(None)` when the type is not modelled for this channel.
fn message_body(
    channel: Channel,
    f: &Fields<'_>,
    msg_type: &str,
) -> Result<Option<EventBody>, CodecError> {
    use Channel::{Mp, Oa, WeCom};
    let msg_type = msg_type.to_ascii_lowercase();
    let content = match (channel, msg_type.as_str()) {
        (_, "text") => MessageContent::Text {
            content: f.string("Content")?,
        },
        (_, "image") => MessageContent::Image {
            pic_url: f.opt_string("PicUrl")?,
            media_id: f.string("MediaId")?,
        },
        (Oa | WeCom, "voice") => MessageContent::Voice {
            media_id: f.string("MediaId")?,
            format: f.opt_string("Format")?,
            recognition: f.opt_string("Recognition")?,
        },
        (Oa | WeCom, "video") => MessageContent::Video {
            media_id: f.string("MediaId")?,
            thumb_media_id: f.opt_string("ThumbMediaId")?,
        },
        (Oa, "shortvideo") => MessageContent::ShortVideo {
            media_id: f.string("MediaId")?,
            thumb_media_id: f.opt_string("ThumbMediaId")?,
        },
        (Oa | WeCom, "location") => MessageContent::Location {
            location_x: f.f64("Location_X")?,
            location_y: f.f64("Location_Y")?,
            scale: f.opt_f64("Scale")?,
            label: f.opt_string("Label")?,
        },
        (Oa | WeCom, "link") => MessageContent::Link {
            title: f.string("Title")?,
            description: f.opt_string("Description")?,
            url: f.string("Url")?,
        },
        (Mp, "miniprogrampage") => MessageContent::MiniProgramPage {
            title: f.opt_string("Title")?,
            app_id: f.opt_string("AppId")?,
            page_path: f.opt_string("PagePath")?,
            thumb_url: f.opt_string("ThumbUrl")?,
            thumb_media_id: f.opt_string("ThumbMediaId")?,
        },
        _ => return Ok(None),
    };
    Ok(Some(EventBody::Message(Message {
        msg_id: f.u64("MsgId")?,
        msg_data_id: f.opt_u64("MsgDataId")?,
        idx: f.opt_u32("Idx")?,
        agent_id: f.opt_string("AgentID")?,
        content,
    })))
}
