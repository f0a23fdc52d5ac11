//! The headers this bus adds to a message: the attempt count and the last error, written on
//! publish, retry and park, and read back by consumers and the parking tools.

use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;
use proto::Envelope;

use crate::bus::Parked;

use super::{ATTEMPT_HEADER, ERROR_HEADER};

pub(super) fn properties(
    envelope: &Envelope,
    attempt: u32,
    error: Option<&str>,
) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(attempt));
    if let Some(e) = error {
        headers.insert(ERROR_HEADER.into(), AMQPValue::LongString(e.into()));
    }
    BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(envelope.id.to_string()))
        .with_type(ShortString::from(envelope.kind.clone()))
        .with_timestamp(envelope.occurred_at.timestamp().max(0) as u64)
        .with_headers(headers)
}

/// What the tooling shows of a parked delivery.
pub(super) fn parked_of(d: &lapin::message::Delivery) -> Parked {
    let last_error = d
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ERROR_HEADER).cloned())
        .and_then(|v| match v {
            AMQPValue::LongString(s) => Some(s.to_string()),
            _ => None,
        });
    match Envelope::from_bytes(&d.data) {
        Ok(e) => Parked {
            id: Some(e.id),
            kind: e.kind,
            tenant_id: Some(e.tenant_id),
            attempts: attempt_of(&d.properties),
            last_error,
        },
        Err(_) => Parked {
            id: d
                .properties
                .message_id()
                .as_ref()
                .and_then(|m| uuid::Uuid::parse_str(m.as_str()).ok()),
            kind: d
                .properties
                .kind()
                .as_ref()
                .map(|k| k.to_string())
                .unwrap_or_else(|| "(not an envelope)".into()),
            tenant_id: None,
            attempts: attempt_of(&d.properties),
            last_error,
        },
    }
}

pub(super) fn attempt_of(props: &BasicProperties) -> u32 {
    props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPT_HEADER).cloned())
        .and_then(|v| match v {
            AMQPValue::LongUInt(n) => Some(n),
            AMQPValue::LongInt(n) => u32::try_from(n).ok(),
            AMQPValue::LongLongInt(n) => u32::try_from(n).ok(),
            AMQPValue::ShortUInt(n) => Some(u32::from(n)),
            _ => None,
        })
        .unwrap_or(1)
        .max(1)
}
