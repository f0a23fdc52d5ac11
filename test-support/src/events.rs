//! Channel events as the gateway publishes them, built directly for service tests, and small
//! database probes those tests share.

use proto::callback::CallbackReceived;
use proto::channel::{Channel, ChannelEvent, EventBody, Message, MessageContent};
use proto::sdk::{MpPhoneVerified, MpSessionStarted};
use proto::Envelope;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

/// A mini-program login (`channel.mp.session`).
pub fn session(tenant: &str, app: &str, openid: &str, unionid: Option<&str>) -> Envelope {
    let p = MpSessionStarted {
        app_id: app.into(),
        openid: openid.into(),
        unionid: unionid.map(str::to_string),
    };
    Envelope::of(tenant, &p).build()
}

/// A phone verified through a mini-program (`channel.mp.phone`), country code 86.
pub fn phone(
    tenant: &str,
    app: &str,
    openid: &str,
    unionid: Option<&str>,
    number: &str,
) -> Envelope {
    let p = MpPhoneVerified {
        app_id: app.into(),
        openid: openid.into(),
        unionid: unionid.map(str::to_string),
        phone_e164: number.into(),
        country_code: "86".into(),
    };
    Envelope::of(tenant, &p).build()
}

/// A WeChat callback received by `app` from `from` at Unix time `t`, with the gateway's
/// deterministic id.
pub fn callback(
    tenant: &str,
    channel: Channel,
    app: &str,
    from: &str,
    body: EventBody,
    t: i64,
) -> Envelope {
    let ev = ChannelEvent {
        channel,
        to_user_name: "gh_test".into(),
        from_user_name: from.into(),
        create_time: t,
        body,
    };
    let payload = serde_json::json!(CallbackReceived {
        app_id: app.into(),
        event: ev.clone(),
    });
    Envelope::builder(ev.event_type(), tenant, payload)
        .occurred_at(ev.occurred_at())
        .dedupe_key(ev.dedupe_key())
        .build()
}

/// A text message `msg_id` from `openid`, at a realistic time derived from the id (MySQL
/// TIMESTAMP columns cannot hold the epoch itself).
pub fn text(tenant: &str, channel: Channel, app: &str, openid: &str, msg_id: u64) -> Envelope {
    let body = EventBody::Message(Message {
        msg_id,
        msg_data_id: None,
        idx: None,
        agent_id: None,
        content: MessageContent::Text {
            content: "hello".into(),
        },
    });
    callback(
        tenant,
        channel,
        app,
        openid,
        body,
        1_714_000_000 + msg_id as i64,
    )
}

/// The single integer a `SELECT COUNT(*) …` answers.
pub async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("count query")
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("an integer")
}
