//! Bus events into the tagger: each handled exactly once through the inbox, a batch in one
//! transaction (handled again event by event when it cannot commit), and the `profile.resolved`
//! events of a batch recorded together.

use std::collections::BTreeSet;
use std::sync::Arc;

use platform::db::inbox::{self, Processed};
use proto::identity::ProfileResolved;
use proto::profile::ProfileEvent;
use proto::tagging::TagChanged;
use proto::Envelope;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::store::members;
use crate::store::rules::Trigger;
use crate::store::work::{decode, Work};

use super::{HandleError, Handled, Tagger, CONSUMER};

impl Tagger {
    /// Handles one bus event exactly once.
    pub async fn handle(&self, env: &Envelope) -> Result<Handled, HandleError> {
        self.handle_batch(std::slice::from_ref(env))
            .await
            .pop()
            .unwrap_or(Ok(Handled::Ignored))
    }

    /// Handles several bus events in one transaction (one inbox statement, one commit for all),
    /// in order, with one outcome per event. A batch that cannot commit is handled again event
    /// by event, so one failing event never holds back the others.
    pub async fn handle_batch(&self, envs: &[Envelope]) -> Vec<Result<Handled, HandleError>> {
        let mut out: Vec<Option<Result<Handled, HandleError>>> =
            envs.iter().map(|_| None).collect();
        let mut works = Vec::new();
        for (i, env) in envs.iter().enumerate() {
            match decode(env) {
                Ok(Some(w)) => works.push((i, (env.id, env.tenant_id.clone(), Arc::new(w)))),
                Ok(None) => out[i] = Some(Ok(Handled::Ignored)),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        // Profiles are locked in one order (tenant, profile) by every batch, so two batches
        // sharing profiles wait for each other instead of deadlocking; the sort is stable, so a
        // profile's own events keep their order.
        works.sort_by(|(_, (_, ta, wa)), (_, (_, tb, wb))| {
            (ta.as_str(), wa.profile()).cmp(&(tb.as_str(), wb.profile()))
        });
        if !works.is_empty() {
            let items = works.iter().map(|(_, w)| w.clone()).collect();
            match self.apply_batch(items).await {
                Ok(done) => {
                    for ((i, _), h) in works.iter().zip(done) {
                        out[*i] = Some(Ok(h));
                    }
                }
                Err(e) if works.len() == 1 => out[works[0].0] = Some(Err(e.into())),
                Err(e) => {
                    tracing::warn!(error = %e, size = works.len(), "Batch failed; handling its events one by one");
                    for (i, w) in works {
                        out[i] = Some(
                            self.apply_batch(vec![w])
                                .await
                                .map(|mut h| h.pop().unwrap_or(Handled::Ignored))
                                .map_err(HandleError::from),
                        );
                    }
                }
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or(Ok(Handled::Ignored)))
            .collect()
    }

    /// Applies `items` (message id, tenant, work) in one transaction through the inbox.
    async fn apply_batch(
        &self,
        items: Vec<(uuid::Uuid, String, Arc<Work>)>,
    ) -> Result<Vec<Handled>, DbErr> {
        let ids: Vec<uuid::Uuid> = items.iter().map(|(id, _, _)| *id).collect();
        // The tenants' rules and counter day are read now, into their caches: a transaction
        // holding a pooled connection should not wait for another one (a full pool would wait
        // for itself until the acquire times out).
        let tenants: BTreeSet<&str> = items.iter().map(|(_, t, _)| t.as_str()).collect();
        for t in tenants {
            self.engine.rules.get(t).await?;
            self.rolled_to(t).await?;
        }
        let items = Arc::new(items);
        let (processed, _) = inbox::process_batch_retrying(
            &self.db,
            CONSUMER,
            &ids,
            self.cfg.tx_attempts,
            |txn, fresh| {
                let (me, items) = (self.clone(), items.clone());
                Box::pin(async move {
                    let mut changes = Vec::with_capacity(fresh.len());
                    // Events recorded for the first time, per tenant, for its activity sums.
                    let mut activity: std::collections::BTreeMap<&str, Vec<rules::EventFact>> =
                        Default::default();
                    let mut k = 0;
                    while k < fresh.len() {
                        let (_, tenant, work) = &items[fresh[k]];
                        // Behaviour events of one tenant next to each other are recorded
                        // together (a few statements for all), then settled one by one.
                        let run: Vec<&ProfileResolved> = fresh[k..]
                            .iter()
                            .map(|&j| &items[j])
                            .take_while(|(_, t, _)| t == tenant)
                            .map_while(|(_, _, w)| match &**w {
                                Work::Profile(ProfileEvent::Resolved(r)) => Some(r),
                                _ => None,
                            })
                            .collect();
                        if !run.is_empty() {
                            k += run.len();
                            let (c, recorded) = me.resolved(txn, tenant, &run).await?;
                            changes.extend(c);
                            activity
                                .entry(tenant.as_str())
                                .or_default()
                                .extend(recorded);
                        } else {
                            k += 1;
                            changes.push(me.apply(txn, tenant, work).await?);
                        }
                    }
                    // Every `tag.changed` of the batch in one statement per tenant.
                    let mut by_tenant: std::collections::BTreeMap<&str, Vec<TagChanged>> =
                        Default::default();
                    for (&j, c) in fresh.iter().zip(&changes) {
                        if matches!(&*items[j].2, Work::Unmerged(..)) {
                            // Announced whole, as `tag.unmerged`.
                            continue;
                        }
                        by_tenant
                            .entry(items[j].1.as_str())
                            .or_default()
                            .extend(c.iter().cloned());
                    }
                    for (tenant, c) in by_tenant {
                        members::publish(txn, tenant, &c).await?;
                    }
                    // Last: the tenant's shared activity rows (see facts::bump_tenant_activity).
                    for (tenant, evs) in &activity {
                        let evs: Vec<&rules::EventFact> = evs.iter().collect();
                        facts::bump_tenant_activity(txn, tenant, &evs).await?;
                    }
                    Ok(changes)
                })
            },
        )
        .await?;
        Ok(processed
            .into_iter()
            .map(|p| match p {
                Processed::Done(c) => Handled::Done(c),
                Processed::Duplicate => Handled::Duplicate,
            })
            .collect())
    }

    /// Records and settles behaviour events of a tenant's profiles, each as if alone: the
    /// profiles are locked first (in key order), when they were first seen kept, the events of profiles with one event here are
    /// recorded together (a few statements for all), a profile's several events one at a time,
    /// each right before its profile is settled. Returns each event's tag-set changes (none for
    /// an event seen before) and the events recorded for the first time.
    pub(super) async fn resolved(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        works: &[&ProfileResolved],
    ) -> Result<(Vec<Vec<TagChanged>>, Vec<rules::EventFact>), DbErr> {
        let at = self.at(tenant);
        let profiles: Vec<&str> = works.iter().map(|r| r.profile_id.as_str()).collect();
        let mut first = facts::ensure_locked_many(txn, tenant, &profiles, at.now).await?;
        // First seen: at the creating event, or at the first event of a profile new here.
        let sightings: Vec<facts::Sighting> = works
            .iter()
            .zip(&profiles)
            .filter(|(r, p)| r.created || first.contains(**p))
            .map(|(r, p)| (*p, r.event.occurred_at))
            .collect();
        facts::record_first_seen(txn, tenant, &sightings, at.zone).await?;
        let evs: Vec<rules::EventFact> = works
            .iter()
            .map(|r| facts::event_fact(&r.event, at.zone))
            .collect();
        let rolling = facts::Rolling::AsOf {
            today: at.today,
            rolled_to: Some(self.rolled_to(tenant).await?),
        };
        let mut events_of: std::collections::HashMap<&str, usize> = Default::default();
        for p in &profiles {
            *events_of.entry(p).or_default() += 1;
        }
        let alone: Vec<usize> = (0..works.len())
            .filter(|&i| events_of[profiles[i]] == 1)
            .collect();
        let pairs: Vec<facts::ProfileEvent> =
            alone.iter().map(|&i| (profiles[i], &evs[i])).collect();
        let mut new = vec![false; works.len()];
        for (&i, n) in alone
            .iter()
            .zip(facts::record_events(txn, tenant, &pairs, rolling).await?)
        {
            new[i] = n;
        }
        let mut out = Vec::with_capacity(works.len());
        for (i, (p, ev)) in profiles.iter().zip(&evs).enumerate() {
            if events_of[p] > 1 {
                new[i] = facts::record_events(txn, tenant, &[(p, ev)], rolling).await?[0];
            }
            // A profile new to the projection is settled against every rule, once.
            let first = first.remove(*p);
            if !new[i] && !first {
                out.push(Vec::new());
                continue;
            }
            let trigger = if first {
                Trigger::All
            } else {
                let content_tags = ev
                    .props
                    .get(rules::CONTENT_TAGS_KEY)
                    .map(|vs| {
                        vs.iter()
                            .filter_map(|v| v.encode().s)
                            .collect::<Vec<String>>()
                    })
                    .unwrap_or_default();
                Trigger::Event {
                    kind: ev.kind.clone(),
                    content_tags,
                }
            };
            out.push(self.engine.settle(txn, tenant, p, trigger, &at).await?);
        }
        let recorded = evs
            .into_iter()
            .zip(new)
            .filter_map(|(ev, n)| n.then_some(ev))
            .collect();
        Ok((out, recorded))
    }
}
