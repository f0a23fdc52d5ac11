//! The bus envelope (DESIGN.md §3): every message on the bus is one of these, serialised as JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespace for name-based message ids; fixed forever so ids stay stable across releases.
const MESSAGE_ID_NAMESPACE: Uuid = Uuid::from_bytes([
    0x6b, 0x1f, 0x3c, 0x52, 0x8e, 0x0d, 0x4a, 0x9b, 0xa1, 0x77, 0x25, 0xd4, 0x3e, 0x90, 0x11, 0xc8,
]);

/// A message on the bus.
///
/// `id` is a UUIDv7. When the source has a natural key (a WeChat `MsgId`, a sender + CreateTime +
/// event, …) the id is derived from it, so a re-sent or redelivered message carries the same id and
/// consumers' inboxes recognise it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Message id (UUIDv7; deterministic when `dedupe_key` is set).
    pub id: Uuid,
    /// Event type, also the routing key, e.g. `channel.oa.subscribe`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Version of the payload schema for this `type`.
    pub version: u16,
    /// Tenant the event belongs to.
    pub tenant_id: String,
    /// When the fact happened at its source.
    pub occurred_at: DateTime<Utc>,
    /// When this system first received it.
    pub received_at: DateTime<Utc>,
    /// Trace id propagated from the request or message that caused this one.
    pub trace_id: String,
    /// The natural key the id was derived from, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_key: Option<String>,
    /// Type-specific body.
    pub payload: serde_json::Value,
}

impl Envelope {
    /// Starts an envelope of `kind` for `tenant_id` carrying `payload`.
    pub fn builder(
        kind: impl Into<String>,
        tenant_id: impl Into<String>,
        payload: serde_json::Value,
    ) -> EnvelopeBuilder {
        let now = Utc::now();
        EnvelopeBuilder {
            kind: kind.into(),
            version: 1,
            tenant_id: tenant_id.into(),
            occurred_at: now,
            received_at: now,
            trace_id: None,
            dedupe_key: None,
            payload,
        }
    }

    /// The routing key this envelope is published under (its `type`).
    pub fn routing_key(&self) -> &str {
        &self.kind
    }

    /// Serialises to the wire form (JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings, numbers and a JSON value cannot fail to serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses the wire form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Decodes the payload into a typed event.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.payload)
    }
}

/// Builder for [`Envelope`]; `build` fixes the id.
#[derive(Debug, Clone)]
pub struct EnvelopeBuilder {
    kind: String,
    version: u16,
    tenant_id: String,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    trace_id: Option<String>,
    dedupe_key: Option<String>,
    payload: serde_json::Value,
}

impl EnvelopeBuilder {
    pub fn version(mut self, version: u16) -> Self {
        self.version = version;
        self
    }

    pub fn occurred_at(mut self, at: DateTime<Utc>) -> Self {
        self.occurred_at = at;
        self
    }

    pub fn received_at(mut self, at: DateTime<Utc>) -> Self {
        self.received_at = at;
        self
    }

    pub fn trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_id = Some(trace_id.into());
        self
    }

    /// Sets the natural key; the id becomes a function of (tenant, type, key, occurred_at).
    pub fn dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    pub fn build(self) -> Envelope {
        let id = match &self.dedupe_key {
            Some(key) => deterministic_id(&self.tenant_id, &self.kind, key, self.occurred_at),
            None => Uuid::now_v7(),
        };
        let trace_id = self.trace_id.unwrap_or_else(|| id.simple().to_string());
        Envelope {
            id,
            kind: self.kind,
            version: self.version,
            tenant_id: self.tenant_id,
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            trace_id,
            dedupe_key: self.dedupe_key,
            payload: self.payload,
        }
    }
}

/// A UUIDv7 whose timestamp is `occurred_at` and whose random bits are a SHA-1 of the natural key,
/// so the same fact always gets the same id while ids stay roughly time-ordered.
pub fn deterministic_id(tenant: &str, kind: &str, key: &str, occurred_at: DateTime<Utc>) -> Uuid {
    let name = format!("{tenant}\u{1f}{kind}\u{1f}{key}");
    let digest = Uuid::new_v5(&MESSAGE_ID_NAMESPACE, name.as_bytes());
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest.as_bytes()[..10]);
    let millis = u64::try_from(occurred_at.timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn natural_key_gives_same_id() {
        let at = Utc.with_ymd_and_hms(2024, 5, 1, 8, 0, 0).unwrap();
        let a = Envelope::builder("channel.oa.subscribe", "t1", serde_json::json!({"a": 1}))
            .occurred_at(at)
            .dedupe_key("oOPENID|1714550400|subscribe|")
            .build();
        let b = Envelope::builder("channel.oa.subscribe", "t1", serde_json::json!({"a": 2}))
            .occurred_at(at)
            .dedupe_key("oOPENID|1714550400|subscribe|")
            .build();
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.get_version_num(), 7);
        let ts = a.id.get_timestamp().unwrap().to_unix();
        assert_eq!(ts.0 as i64, at.timestamp());
    }

    #[test]
    fn different_keys_tenants_or_types_differ() {
        let at = Utc::now();
        let id = |t: &str, k: &str, key: &str| deterministic_id(t, k, key, at);
        assert_ne!(id("t1", "x", "k"), id("t1", "x", "k2"));
        assert_ne!(id("t1", "x", "k"), id("t2", "x", "k"));
        assert_ne!(id("t1", "x", "k"), id("t1", "y", "k"));
    }

    #[test]
    fn without_key_ids_are_unique_v7_and_trace_defaults_to_id() {
        let a = Envelope::builder("x", "t", serde_json::Value::Null).build();
        let b = Envelope::builder("x", "t", serde_json::Value::Null).build();
        assert_ne!(a.id, b.id);
        assert_eq!(a.trace_id, a.id.simple().to_string());
    }

    #[test]
    fn wire_round_trip_uses_type_field() {
        let e = Envelope::builder("profile.resolved", "t", serde_json::json!({"p": "x"}))
            .trace_id("abc")
            .build();
        let bytes = e.to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["type"], "profile.resolved");
        assert_eq!(Envelope::from_bytes(&bytes).unwrap(), e);
    }
}
