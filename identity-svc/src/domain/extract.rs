//! Which identifiers a channel event carries, cleaned and filtered by the blocklist, plus the
//! compact summary kept on the timeline.
//!
//! | event | identifiers |
//! |---|---|
//! | OA callbacks (events and messages from a follower) | `oa_openid` (ns = appid) from `FromUserName` |
//! | MP callbacks (messages, customer-service session, subscribe messages) | `mp_openid` (ns = appid) |
//! | WeCom `change_external_contact` | `wecom_external_userid` (ns = corpid) |
//! | `channel.mp.session` | `mp_openid`, `unionid` |
//! | `channel.mp.phone` | `mp_openid`, `unionid`, `phone` (verified by WeChat) |
//! | `channel.track.*` | `mp_openid`, `unionid`, `web_cookie` from the subject |
//!
//! Events about no single person carry none and are acknowledged without a timeline entry:
//! WeCom customer-group and corp-tag changes, WeCom member messages (`FromUserName` is a rep),
//! mass-send results, and callbacks of unmodelled types.

use proto::callback::CallbackReceived;
use proto::channel::{Channel, EventBody};
use proto::identity::{Identifier, IdentifierKind, Provenance, DEFAULT_NAMESPACE};
use proto::sdk::{MpPhoneVerified, MpSessionStarted, Tracked, MP_PHONE, MP_SESSION, TRACK_PREFIX};
use proto::Envelope;
use serde_json::{json, Value};

use super::Policy;

/// An identifier found on an event, with where its value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub identifier: Identifier,
    pub provenance: Provenance,
}

/// What resolution needs from one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    /// Identifiers in order of relevance: the event's subject first.
    pub identifiers: Vec<Found>,
    /// Compact timeline summary (no personal values).
    pub summary: Value,
}

/// The payload does not match its type.
#[derive(Debug, thiserror::Error)]
#[error("payload of `{kind}` does not decode: {reason}")]
pub struct DecodeError {
    pub kind: String,
    pub reason: String,
}

/// Extracts the identifiers of `env` (blocked and malformed values dropped; unionids in the
/// namespace of the reporting app's Open Platform account).
pub fn extract(env: &Envelope, policy: &Policy) -> Result<Extracted, DecodeError> {
    let bad = |e: serde_json::Error| DecodeError {
        kind: env.kind.clone(),
        reason: e.to_string(),
    };
    let typed = |e: proto::DecodeError| match e {
        proto::DecodeError::Payload { source, .. } => bad(source),
        other => DecodeError {
            kind: env.kind.clone(),
            reason: other.to_string(),
        },
    };
    let mut out = Vec::new();
    let summary;
    if env.kind == MP_SESSION {
        let s: MpSessionStarted = env.decode().map_err(typed)?;
        push(
            &mut out,
            IdentifierKind::MpOpenid,
            &s.app_id,
            &s.openid,
            Provenance::Wechat,
        );
        if let Some(u) = &s.unionid {
            push(
                &mut out,
                IdentifierKind::Unionid,
                policy.unionid_namespace(Some(&s.app_id)),
                u,
                Provenance::Wechat,
            );
        }
        summary = json!({"app_id": s.app_id});
    } else if env.kind == MP_PHONE {
        let p: MpPhoneVerified = env.decode().map_err(typed)?;
        push(
            &mut out,
            IdentifierKind::MpOpenid,
            &p.app_id,
            &p.openid,
            Provenance::Wechat,
        );
        if let Some(u) = &p.unionid {
            push(
                &mut out,
                IdentifierKind::Unionid,
                policy.unionid_namespace(Some(&p.app_id)),
                u,
                Provenance::Wechat,
            );
        }
        push(
            &mut out,
            IdentifierKind::Phone,
            &p.country_code,
            &p.phone_e164,
            Provenance::VerifiedMp,
        );
        summary = json!({"app_id": p.app_id});
    } else if env
        .kind
        .strip_prefix(TRACK_PREFIX)
        .is_some_and(|rest| rest.starts_with('.'))
    {
        let t: Tracked = env.payload_as().map_err(bad)?;
        let s = &t.subject;
        if let (Some(app), Some(openid)) = (&s.mp_app_id, &s.openid) {
            push(
                &mut out,
                IdentifierKind::MpOpenid,
                app,
                openid,
                Provenance::Wechat,
            );
        }
        if let Some(u) = &s.unionid {
            push(
                &mut out,
                IdentifierKind::Unionid,
                policy.unionid_namespace(s.mp_app_id.as_deref()),
                u,
                Provenance::Wechat,
            );
        }
        if let Some(a) = &s.anonymous_id {
            push(
                &mut out,
                IdentifierKind::WebCookie,
                DEFAULT_NAMESPACE,
                a,
                Provenance::Tracked,
            );
        }
        summary = json!({
            "kind": t.kind.as_str(),
            "name": t.name,
            "page": t.page,
            "content_id": t.content.as_ref().map(|c| c.id.clone()),
        });
    } else if env.kind.starts_with("channel.") {
        let cb: CallbackReceived = env.payload_as().map_err(bad)?;
        let ev = &cb.event;
        let subject = match (&ev.channel, &ev.body) {
            (_, EventBody::Unknown { .. }) => None,
            (_, EventBody::MassSendJobFinish { .. }) => None,
            (Channel::WeCom, EventBody::ExternalContact(c)) => Some((
                IdentifierKind::WecomExternalUserid,
                c.external_user_id.as_str(),
            )),
            // Group chats and corp tags are about no single customer; WeCom messages come from reps.
            (Channel::WeCom, _) => None,
            (Channel::Oa, _) => Some((IdentifierKind::OaOpenid, ev.from_user_name.as_str())),
            (Channel::Mp, _) => Some((IdentifierKind::MpOpenid, ev.from_user_name.as_str())),
        };
        if let Some((kind, value)) = subject {
            push(&mut out, kind, &cb.app_id, value, Provenance::Wechat);
        }
        let mut s = json!({"app_id": cb.app_id, "event": ev.body.route_suffix()});
        match &ev.body {
            EventBody::Subscribe {
                scene: Some(scene), ..
            }
            | EventBody::Scan { scene, .. } => {
                s["scene"] = json!(scene);
            }
            EventBody::ExternalContact(c) => {
                s["user_id"] = json!(c.user_id);
                if let Some(state) = &c.state {
                    s["state"] = json!(state);
                }
            }
            _ => {}
        }
        summary = s;
    } else {
        summary = Value::Null;
    }
    out.retain(|f| !policy.blocklist.is_blocked(&f.identifier.value));
    Ok(Extracted {
        identifiers: out,
        summary,
    })
}

/// Cleans a value of `kind` and appends it when it is well-formed and not already present.
fn push(out: &mut Vec<Found>, kind: IdentifierKind, namespace: &str, value: &str, p: Provenance) {
    let namespace = namespace.trim();
    let Some(value) = normalise(kind, value) else {
        return;
    };
    if namespace.is_empty() || namespace.len() > 64 {
        return;
    }
    let identifier = Identifier::new(kind, namespace, value);
    if out.iter().any(|f| f.identifier == identifier) {
        return;
    }
    out.push(Found {
        identifier,
        provenance: p,
    });
}

/// The stored form of a value, or `None` when it is not a usable identifier of `kind`.
pub fn normalise(kind: IdentifierKind, value: &str) -> Option<String> {
    let v = value.trim();
    if v.is_empty() || v.len() > 128 {
        return None;
    }
    match kind {
        IdentifierKind::Phone => {
            let digits = v.strip_prefix('+')?;
            let ok = (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
            ok.then(|| v.to_string())
        }
        IdentifierKind::Email => {
            let v = v.to_ascii_lowercase();
            let (local, domain) = v.split_once('@')?;
            let ok = !local.is_empty() && domain.contains('.') && !v.contains(char::is_whitespace);
            ok.then_some(v)
        }
        _ => Some(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::channel::{ChannelEvent, ExternalChatChange, ExternalChatChangeType};
    use proto::channel::{ExternalContactChange, ExternalContactChangeType};

    fn bl() -> Policy {
        Policy::from_config(&crate::config::ResolutionConfig {
            blocked_values: vec!["+8613800138000".to_string()],
            blocked_patterns: vec!["+86100*".to_string()],
            open_platforms: [("wxOP".to_string(), "op1".to_string())].into(),
            ..Default::default()
        })
    }

    fn callback(channel: Channel, app: &str, from: &str, body: EventBody) -> Envelope {
        let ev = ChannelEvent {
            channel,
            to_user_name: "gh_x".into(),
            from_user_name: from.into(),
            create_time: 1_714_000_000,
            body,
        };
        let payload = serde_json::to_value(CallbackReceived {
            app_id: app.into(),
            event: ev.clone(),
        })
        .unwrap();
        Envelope::builder(ev.event_type(), "t1", payload).build()
    }

    fn kinds(e: &Extracted) -> Vec<(IdentifierKind, String, String)> {
        e.identifiers
            .iter()
            .map(|f| {
                (
                    f.identifier.kind,
                    f.identifier.namespace.clone(),
                    f.identifier.value.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn oa_subscribe_gives_oa_openid_in_app_namespace() {
        let env = callback(
            Channel::Oa,
            "wxOA",
            "oOPEN1",
            EventBody::Subscribe {
                scene: Some("s1".into()),
                ticket: None,
            },
        );
        let e = extract(&env, &bl()).unwrap();
        assert_eq!(
            kinds(&e),
            vec![(IdentifierKind::OaOpenid, "wxOA".into(), "oOPEN1".into())]
        );
        assert_eq!(e.summary["scene"], "s1");
    }

    #[test]
    fn wecom_contact_gives_external_userid_and_chat_gives_nothing() {
        let c = ExternalContactChange {
            change_type: ExternalContactChangeType::AddExternalContact,
            user_id: "rep1".into(),
            external_user_id: "wmEXT".into(),
            state: Some("qr7".into()),
            welcome_code: None,
            source: None,
            fail_reason: None,
        };
        let env = callback(
            Channel::WeCom,
            "wwCORP",
            "sys",
            EventBody::ExternalContact(c),
        );
        let e = extract(&env, &bl()).unwrap();
        assert_eq!(
            kinds(&e),
            vec![(
                IdentifierKind::WecomExternalUserid,
                "wwCORP".into(),
                "wmEXT".into()
            )]
        );
        let chat = ExternalChatChange {
            change_type: ExternalChatChangeType::Create,
            chat_id: "c".into(),
            update_detail: None,
            join_scene: None,
            quit_scene: None,
            mem_change_cnt: None,
            mem_change_list: vec![],
            last_mem_ver: None,
            cur_mem_ver: None,
        };
        let env = callback(
            Channel::WeCom,
            "wwCORP",
            "sys",
            EventBody::ExternalChat(chat),
        );
        assert!(extract(&env, &bl()).unwrap().identifiers.is_empty());
    }

    #[test]
    fn mp_phone_gives_openid_unionid_and_verified_phone() {
        let p = MpPhoneVerified {
            app_id: "wxMP".into(),
            openid: "oMP".into(),
            unionid: Some("uU".into()),
            phone_e164: "+8613912345678".into(),
            country_code: "86".into(),
        };
        let env = Envelope::of("t1", &p).build();
        let e = extract(&env, &bl()).unwrap();
        assert_eq!(
            kinds(&e),
            vec![
                (IdentifierKind::MpOpenid, "wxMP".into(), "oMP".into()),
                (IdentifierKind::Unionid, "default".into(), "uU".into()),
                (IdentifierKind::Phone, "86".into(), "+8613912345678".into()),
            ]
        );
        assert_eq!(e.identifiers[2].provenance, Provenance::VerifiedMp);
    }

    #[test]
    fn blocked_and_malformed_values_are_dropped() {
        let mk = |openid: &str, unionid: &str, phone: &str| {
            let p = MpPhoneVerified {
                app_id: "wxMP".into(),
                openid: openid.into(),
                unionid: Some(unionid.into()),
                phone_e164: phone.into(),
                country_code: "86".into(),
            };
            Envelope::of("t1", &p).build()
        };
        assert!(extract(&mk("0", " ", "+8613800138000"), &bl())
            .unwrap()
            .identifiers
            .is_empty());
        assert!(extract(&mk("null", "undefined", "+8610012345678"), &bl())
            .unwrap()
            .identifiers
            .is_empty());
        assert_eq!(
            extract(&mk("oK", "", "13912345678"), &bl())
                .unwrap()
                .identifiers
                .len(),
            1
        );
    }

    #[test]
    fn tracked_subject_and_bad_payload() {
        let t = json!({"subject": {"mp_app_id": "wxMP", "openid": "oMP", "anonymous_id": "dev1"},
                       "kind": "page_view", "properties": {}});
        let env = Envelope::builder("channel.track.page_view", "t1", t).build();
        let e = extract(&env, &bl()).unwrap();
        assert_eq!(e.identifiers.len(), 2);
        assert_eq!(e.identifiers[1].identifier.kind, IdentifierKind::WebCookie);
        let env = Envelope::builder(MP_SESSION, "t1", json!({"nope": 1})).build();
        assert!(extract(&env, &bl()).is_err());
        let env = Envelope::builder("other.thing", "t1", json!({})).build();
        assert!(extract(&env, &bl()).unwrap().identifiers.is_empty());
    }

    #[test]
    fn unionids_live_in_their_open_platform_namespace() {
        let mk = |app: &str| {
            let p = MpSessionStarted {
                app_id: app.into(),
                openid: "o".into(),
                unionid: Some("u".into()),
            };
            Envelope::of("t1", &p).build()
        };
        let ns = |app: &str| {
            extract(&mk(app), &bl()).unwrap().identifiers[1]
                .identifier
                .namespace
                .clone()
        };
        assert_eq!(ns("wxOP"), "op1");
        assert_eq!(ns("wxOther"), "default");
    }

    #[test]
    fn normalise_values() {
        assert_eq!(
            normalise(IdentifierKind::Email, " A@B.com "),
            Some("a@b.com".into())
        );
        assert_eq!(normalise(IdentifierKind::Email, "nope"), None);
        assert_eq!(normalise(IdentifierKind::Phone, "+86 139"), None);
        assert_eq!(
            normalise(IdentifierKind::OaOpenid, " o1 "),
            Some("o1".into())
        );
    }
}
