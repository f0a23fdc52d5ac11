//! Bus messages into the scorer: which types it reads and how they decode, the inbox that
//! applies each once, the batch that shares one transaction (leads locked up front in key order,
//! behaviour events recorded together, outbox rows written together) and the dispatch of each
//! message to its handler. What a message does to a profile lives in `events` and `merge`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use proto::identity::{IDENTITY_MERGED, PROFILE_RESOLVED, PROFILE_UPDATED};
use proto::profile::ProfileEvent;
use proto::tagging::{TAG_CHANGED, TAG_UNMERGED};
use proto::Envelope;
use sea_orm::DatabaseTransaction;

use crate::clock::whole;
use crate::domain::compiled::Compiled;
use crate::store::leads::{self, Lead};
use crate::store::CONSUMER;
use platform::db::{begin_locking_write, inbox, outbox};

use super::projection::record_times;
use super::{Outcome, ScoreError, Scorer};

/// The bus messages scoring acts on. An un-merge is read as tagging applied it (`tag.unmerged`:
/// scoring waits for the final tags of both sides); `identity.unmerged` itself is not read.
const SCORED: &[&str] = &[
    PROFILE_RESOLVED,
    PROFILE_UPDATED,
    TAG_CHANGED,
    IDENTITY_MERGED,
    TAG_UNMERGED,
];

/// Decodes a message scoring acts on; `None` for any other type.
fn decode(env: &Envelope) -> Result<Option<ProfileEvent>, ScoreError> {
    ProfileEvent::decode_of(env, SCORED).map_err(|e| ScoreError::Invalid(e.to_string()))
}

/// What a batch prepared for one of its messages.
#[derive(Default)]
pub(super) struct Prep<'b> {
    /// The message's lead, locked (and whether it was created here); for `profile.resolved`,
    /// its event is in the projection already.
    pub(super) lead: Option<(Lead, bool)>,
    /// Where its outbox events go (the batch writes them all at once).
    pub(super) outbox: Option<&'b Mutex<Vec<Envelope>>>,
}

/// Counts a message's outcome in the metrics and hands it back.
fn count(outcome: Outcome) -> Outcome {
    let label = match outcome {
        Outcome::Applied => "applied",
        Outcome::Duplicate => "duplicate",
        Outcome::Ignored => "ignored",
    };
    metrics::counter!(crate::metrics::MESSAGES, "outcome" => label).increment(1);
    outcome
}

impl Scorer {
    /// Applies a bus message exactly once.
    pub async fn handle(&self, env: &Envelope) -> Result<Outcome, ScoreError> {
        let Some(msg) = decode(env)? else {
            return Ok(count(Outcome::Ignored));
        };
        let outcome = self
            .retry(|| async {
                let defs = self.compiled(&env.tenant_id).await?;
                let txn = begin_locking_write(&self.db).await?;
                let o = self.apply(&txn, &defs, env, &msg).await?;
                if o == Outcome::Duplicate {
                    txn.rollback().await?;
                } else {
                    txn.commit().await?;
                }
                Ok(o)
            })
            .await?;
        Ok(count(outcome))
    }

    /// Applies several bus messages in one transaction (one begin and one commit for all), in
    /// order, with one outcome per message. A batch that cannot commit is applied again message
    /// by message, so one failing message never holds back the others.
    pub async fn handle_batch(&self, envs: &[Envelope]) -> Vec<Result<Outcome, ScoreError>> {
        let mut out: Vec<Option<Result<Outcome, ScoreError>>> = envs.iter().map(|_| None).collect();
        let mut msgs = Vec::new();
        for (i, env) in envs.iter().enumerate() {
            match decode(env) {
                Ok(Some(m)) => msgs.push((i, m)),
                Ok(None) => out[i] = Some(Ok(count(Outcome::Ignored))),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        // Lead rows are locked in one order (tenant, profile) by every batch, so two batches
        // sharing profiles wait for each other instead of deadlocking; the sort is stable, so a
        // profile's own messages keep their order.
        msgs.sort_by(|(a, ma), (b, mb)| {
            (envs[*a].tenant_id.as_str(), ma.profile_id())
                .cmp(&(envs[*b].tenant_id.as_str(), mb.profile_id()))
        });
        if msgs.len() == 1 {
            let i = msgs[0].0;
            out[i] = Some(self.handle(&envs[i]).await);
        } else if !msgs.is_empty() {
            let done = self
                .retry(|| async {
                    let mut defs: BTreeMap<&str, Arc<Compiled>> = BTreeMap::new();
                    for (i, _) in &msgs {
                        let t = envs[*i].tenant_id.as_str();
                        if !defs.contains_key(t) {
                            defs.insert(t, self.compiled(t).await?);
                        }
                    }
                    let txn = begin_locking_write(&self.db).await?;
                    // One instant for the whole transaction.
                    let now = self.clock.now();
                    let ids: Vec<String> =
                        msgs.iter().map(|(i, _)| envs[*i].id.to_string()).collect();
                    let fresh = inbox::record_fresh(&txn, CONSUMER, &ids, now).await?;
                    let mut prepared = self.prepare(&txn, &defs, envs, &msgs, &fresh, now).await?;
                    let sink = Mutex::new(Vec::new());
                    let mut outcomes = Vec::with_capacity(msgs.len());
                    for (k, (i, m)) in msgs.iter().enumerate() {
                        if !fresh[k] {
                            outcomes.push(Outcome::Duplicate);
                            continue;
                        }
                        let d = &defs[envs[*i].tenant_id.as_str()];
                        let prep = Prep {
                            lead: prepared[k].take(),
                            outbox: Some(&sink),
                        };
                        outcomes.push(self.dispatch(&txn, d, &envs[*i], m, now, prep).await?);
                    }
                    let events = sink.into_inner().unwrap_or_else(|e| e.into_inner());
                    outbox::enqueue_many(&txn, &events).await?;
                    txn.commit().await?;
                    Ok(outcomes)
                })
                .await;
            match done {
                Ok(outcomes) => {
                    for ((i, _), o) in msgs.iter().zip(outcomes) {
                        out[*i] = Some(Ok(count(o)));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, size = msgs.len(), "Batch failed; applying its messages one by one");
                    for (i, _) in &msgs {
                        out[*i] = Some(self.handle(&envs[*i]).await);
                    }
                }
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or(Ok(Outcome::Ignored)))
            .collect()
    }

    /// Applies one message inside `txn`, unless the inbox shows it was applied before.
    /// `defs` are the tenant's, read before the transaction began: a transaction holding a pooled
    /// connection must not wait for another one (a full pool would wait for itself).
    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        env: &Envelope,
        msg: &ProfileEvent,
    ) -> Result<Outcome, ScoreError> {
        let now = self.clock.now();
        if inbox::record_fresh(txn, CONSUMER, &[env.id.to_string()], now).await? == [false] {
            return Ok(Outcome::Duplicate);
        }
        self.dispatch(txn, defs, env, msg, now, Prep::default())
            .await
    }

    /// Applies one message the inbox has just recorded.
    async fn dispatch(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        env: &Envelope,
        msg: &ProfileEvent,
        now: DateTime<Utc>,
        prep: Prep<'_>,
    ) -> Result<Outcome, ScoreError> {
        match msg {
            ProfileEvent::Resolved(p) => self.on_resolved(txn, defs, env, p, now, prep).await,
            ProfileEvent::Updated(u) => self.on_updated(txn, defs, env, u, now, prep).await,
            ProfileEvent::TagChanged(t) => self.on_tag(txn, defs, env, t, now, prep).await,
            ProfileEvent::Merged(m) => self.on_merged(txn, defs, env, m, now, prep).await,
            ProfileEvent::TagsUnmerged(u) => self.on_unmerged(txn, defs, env, u, now, prep).await,
            // Not in `SCORED`: never decoded here.
            ProfileEvent::Unmerged(_) => Ok(Outcome::Ignored),
        }
    }

    /// Locks, in the batch's order, the lead of every fresh message, and for each message whose
    /// profile no other message of the batch touches, keeps the lead (creating it when missing)
    /// and records its behaviour event in the projection — a few statements per tenant instead
    /// of a few per event. A batch with a merge or un-merge, or reaching a profile merged away,
    /// prepares nothing: those move leads and facts between profiles as they are applied.
    async fn prepare(
        &self,
        txn: &DatabaseTransaction,
        defs: &BTreeMap<&str, Arc<Compiled>>,
        envs: &[Envelope],
        msgs: &[(usize, ProfileEvent)],
        fresh: &[bool],
        now: DateTime<Utc>,
    ) -> Result<Vec<Option<(Lead, bool)>>, ScoreError> {
        let mut out: Vec<Option<(Lead, bool)>> = msgs.iter().map(|_| None).collect();
        let live: Vec<(usize, &str, &ProfileEvent)> = msgs
            .iter()
            .enumerate()
            .filter(|(k, _)| fresh[*k])
            .map(|(k, (i, m))| (k, envs[*i].tenant_id.as_str(), m))
            .collect();
        if live
            .iter()
            .any(|(_, _, m)| matches!(m, ProfileEvent::Merged(_) | ProfileEvent::TagsUnmerged(_)))
        {
            return Ok(out);
        }
        let mut count: HashMap<(&str, &str), usize> = HashMap::new();
        for (_, t, m) in &live {
            *count.entry((t, m.profile_id())).or_default() += 1;
        }
        // Every lead in key order (the messages are sorted), each once.
        let mut locked: HashMap<(&str, &str), Option<Lead>> = HashMap::new();
        for (_, t, m) in &live {
            if let std::collections::hash_map::Entry::Vacant(slot) =
                locked.entry((t, m.profile_id()))
            {
                let l = leads::lock(txn, t, m.profile_id()).await?;
                if l.as_ref()
                    .is_some_and(|l| !l.active() && l.merged_into.is_some())
                {
                    return Ok(out);
                }
                slot.insert(l);
            }
        }
        // Per tenant: the leads created here and the events to record.
        type Events = Vec<(String, rules::EventFact, DateTime<Utc>)>;
        let mut record: BTreeMap<&str, (Vec<String>, Events)> = BTreeMap::new();
        for (k, t, m) in live {
            if count[&(t, m.profile_id())] != 1 {
                continue;
            }
            let first = locked.remove(&(t, m.profile_id())).flatten();
            let (lead, created) = self
                .acquire_from(txn, &defs[t], t, m.profile_id(), false, now, first)
                .await?;
            if let ProfileEvent::Resolved(p) = m {
                let ev = facts::event_fact(&p.event, self.cfg.zone_of(t));
                let earned = whole(p.event.occurred_at).min(now);
                let r = record.entry(t).or_default();
                if created {
                    r.0.push(lead.profile.clone());
                }
                r.1.push((lead.profile.clone(), ev, earned));
            }
            out[k] = Some((lead, created));
        }
        for (tenant, (created, events)) in &record {
            if !created.is_empty() {
                let created: Vec<&str> = created.iter().map(String::as_str).collect();
                facts::ensure_profiles(txn, tenant, &created, now).await?;
            }
            let pe: Vec<facts::ProfileEvent> =
                events.iter().map(|(p, ev, _)| (p.as_str(), ev)).collect();
            facts::record_events(txn, tenant, &pe, facts::Rolling::Skip).await?;
            let times: Vec<(&str, DateTime<Utc>)> = events
                .iter()
                .map(|(_, ev, at)| (ev.event_id.as_str(), *at))
                .collect();
            record_times(txn, tenant, &times).await?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scored_types_only() {
        let env = |kind: &str| Envelope::builder(kind, "t", serde_json::json!({"x": 1})).build();
        // Unread types stay ignored, whatever they carry.
        for kind in ["identity.unmerged", "command.tag.add", "lead.notify"] {
            assert!(matches!(decode(&env(kind)), Ok(None)), "{kind}");
        }
        for kind in SCORED {
            assert!(
                matches!(decode(&env(kind)), Err(ScoreError::Invalid(_))),
                "{kind}"
            );
        }
    }
}
