//! What a [`Work`] publishes: its events and tag commands go to the outbox (or to the batch's
//! sink), each id derived from the cause, so a retried transaction publishes the same ids.

use std::sync::Mutex;

use platform::db::outbox;
use proto::tagging::{TagCommand, COMMAND_TAG_ADD, COMMAND_TAG_REMOVE};
use proto::{Envelope, EnvelopeBuilder, Event};
use sea_orm::DbErr;
use serde_json::json;

use super::Work;

impl<'a> Work<'a> {
    /// Hands the events this work publishes to `sink` instead of the outbox: the owner of the
    /// transaction writes the sink to the outbox before it commits.
    pub fn defer_outbox(&mut self, sink: &'a Mutex<Vec<Envelope>>) {
        self.outbox = Some(sink);
    }

    /// Enqueues `event` in the outbox (or the deferred sink), its id derived from the cause.
    pub async fn publish<E: Event>(&mut self, event: &E) -> Result<(), DbErr> {
        self.enqueue(E::TYPE, Envelope::of(&self.tenant, event))
            .await
    }

    /// Sends tagging a tag command: one payload under two routing keys, so not an [`Event`].
    pub(super) async fn command(&mut self, add: bool, cmd: &TagCommand) -> Result<(), DbErr> {
        let kind = if add {
            COMMAND_TAG_ADD
        } else {
            COMMAND_TAG_REMOVE
        };
        self.enqueue(kind, Envelope::builder(kind, &self.tenant, json!(cmd)))
            .await
    }

    async fn enqueue(&mut self, kind: &str, env: EnvelopeBuilder) -> Result<(), DbErr> {
        self.msgs += 1;
        let env = env
            .occurred_at(self.now)
            .trace_id(self.cause.trace_id.clone())
            .dedupe_key(format!(
                "{}|{}|{}|{}",
                self.cause.id, kind, self.lead.profile, self.msgs
            ))
            .build();
        match self.outbox {
            Some(sink) => {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(env);
                Ok(())
            }
            None => outbox::enqueue(self.txn, &env).await,
        }
    }
}
