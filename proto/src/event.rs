//! Typed bus events: a payload type that travels under one routing key implements [`Event`] (its
//! type name and payload version), so producers write `Envelope::of(tenant, &payload)` and
//! consumers `env.decode::<Payload>()`, with no separate type string to keep in step.
//!
//! Payloads that travel under several routing keys (WeChat callbacks, tracking events, tag
//! commands) are not events in this sense: their envelopes name the kind explicitly
//! ([`Envelope::builder`]) and are read with [`Envelope::payload_as`].

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::envelope::{Envelope, EnvelopeBuilder};

/// A payload that travels on the bus under exactly one type (routing key).
pub trait Event: Serialize + DeserializeOwned {
    /// The envelope's `type`, also its routing key, e.g. `profile.resolved`.
    const TYPE: &'static str;
    /// The payload schema version the envelope carries.
    const VERSION: u16 = 1;
}

/// Why an envelope does not hold the event asked for.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The envelope is of another type.
    #[error("expected a `{expected}` message, found `{found}`")]
    WrongType {
        expected: &'static str,
        found: String,
    },
    /// The type matches but the payload does not decode: it never will.
    #[error("{kind} payload: {source}")]
    Payload {
        kind: &'static str,
        source: serde_json::Error,
    },
}

impl Envelope {
    /// Starts an envelope carrying `event` for `tenant_id`: type and version from [`Event`].
    pub fn of<E: Event>(tenant_id: impl Into<String>, event: &E) -> EnvelopeBuilder {
        // Payloads are plain structs, strings, numbers and string-keyed maps: they serialise.
        let payload = serde_json::to_value(event).unwrap_or(serde_json::Value::Null);
        Envelope::builder(E::TYPE, tenant_id, payload).version(E::VERSION)
    }

    /// Decodes the payload as `E`, refusing an envelope of another type.
    pub fn decode<E: Event>(&self) -> Result<E, DecodeError> {
        if self.kind != E::TYPE {
            return Err(DecodeError::WrongType {
                expected: E::TYPE,
                found: self.kind.clone(),
            });
        }
        E::deserialize(&self.payload).map_err(|source| DecodeError::Payload {
            kind: E::TYPE,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Ping {
        n: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    }

    impl Event for Ping {
        const TYPE: &'static str = "test.ping";
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pong {
        n: u32,
    }

    impl Event for Pong {
        const TYPE: &'static str = "test.pong";
        const VERSION: u16 = 3;
    }

    #[test]
    fn of_sets_type_version_and_payload_as_the_builder_did() {
        let ping = Ping { n: 7, note: None };
        let typed = Envelope::of("t1", &ping).dedupe_key("k").build();
        let raw = Envelope::builder("test.ping", "t1", serde_json::json!(ping))
            .occurred_at(typed.occurred_at)
            .received_at(typed.received_at)
            .dedupe_key("k")
            .build();
        assert_eq!(typed, raw);
        assert_eq!(typed.version, 1);
        assert_eq!(typed.payload, serde_json::json!({"n": 7}));
        assert_eq!(Envelope::of("t1", &Pong { n: 1 }).build().version, 3);
    }

    #[test]
    fn payloads_keep_their_wire_types() {
        use crate::{identity as i, scoring as s, sdk, tagging as t};
        let types = [
            (i::ProfileResolved::TYPE, "profile.resolved"),
            (i::ProfileUpdated::TYPE, "profile.updated"),
            (i::IdentityMerged::TYPE, "identity.merged"),
            (i::IdentityUnmerged::TYPE, "identity.unmerged"),
            (i::EnrichRequested::TYPE, "identity.enrich"),
            (t::TagChanged::TYPE, "tag.changed"),
            (t::TagsUnmerged::TYPE, "tag.unmerged"),
            (s::ScoreChanged::TYPE, "lead.score_changed"),
            (s::StageChanged::TYPE, "lead.stage_changed"),
            (s::SlaBreached::TYPE, "lead.sla_breached"),
            (s::LeadNotify::TYPE, "lead.notify"),
            (sdk::MpSessionStarted::TYPE, "channel.mp.session"),
            (sdk::MpPhoneVerified::TYPE, "channel.mp.phone"),
            (crate::tenant::TenantSettings::TYPE, "tenant.settings"),
        ];
        for (ty, wire) in types {
            assert_eq!(ty, wire);
        }
        assert_eq!(i::ProfileUpdated::VERSION, 1);
    }

    #[test]
    fn decode_round_trips() {
        let ping = Ping {
            n: 1,
            note: Some("x".into()),
        };
        let env = Envelope::from_bytes(&Envelope::of("t1", &ping).build().to_bytes()).unwrap();
        assert_eq!(env.decode::<Ping>().unwrap(), ping);
    }

    #[test]
    fn decode_refuses_another_type() {
        let env = Envelope::of("t1", &Pong { n: 1 }).build();
        let e = env.decode::<Ping>().unwrap_err();
        assert!(matches!(
            &e,
            DecodeError::WrongType { expected: "test.ping", found } if found == "test.pong"
        ));
        assert_eq!(
            e.to_string(),
            "expected a `test.ping` message, found `test.pong`"
        );
    }

    #[test]
    fn decode_refuses_a_bad_payload() {
        let env = Envelope::builder("test.ping", "t1", serde_json::json!({"n": "one"})).build();
        let e = env.decode::<Ping>().unwrap_err();
        assert!(matches!(
            e,
            DecodeError::Payload {
                kind: "test.ping",
                ..
            }
        ));
        assert!(e.to_string().starts_with("test.ping payload: "), "{e}");
    }
}
