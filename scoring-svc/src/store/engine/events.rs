//! A profile's own changes from the bus: a behaviour event (recorded in the projection, event
//! rules awarded under their caps, SLAs met), a state update and a tag change (applied unless a
//! later change was seen), each settled on the profile's lead.

use chrono::{DateTime, Utc};
use proto::identity::{ProfileResolved, ProfileUpdated};
use proto::scoring::ScoreCause;
use proto::tagging::{TagChange, TagChanged};
use proto::Envelope;
use sea_orm::DatabaseTransaction;

use crate::clock::whole;
use crate::domain::compiled::Compiled;
use crate::domain::view::event_view;
use crate::store::leads;
use crate::store::ledger::{self, NewEntry};

use super::bus::Prep;
use super::projection::{record_times, tag_is_newer};
use super::{Outcome, ScoreError, Scorer};

impl Scorer {
    pub(super) async fn on_resolved(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        env: &Envelope,
        p: &ProfileResolved,
        now: DateTime<Utc>,
        prep: Prep<'_>,
    ) -> Result<Outcome, ScoreError> {
        let tenant = env.tenant_id.as_str();
        // A prepared lead comes with its event recorded by the batch.
        let recorded = prep.lead.is_some();
        let (lead, created) = match prep.lead {
            Some(l) => l,
            None => {
                self.acquire(txn, defs, tenant, &p.profile_id, true, now)
                    .await?
            }
        };
        let mut w = self
            .open(
                txn,
                defs,
                lead,
                created,
                now,
                Self::cause(env, ScoreCause::Event),
                prep.outbox,
            )
            .await?;
        let profile = w.profile().to_string();
        let ev = facts::event_fact(&p.event, w.zone);
        let earned = whole(p.event.occurred_at).min(now);
        if !recorded {
            if created {
                // Every other way a lead comes to be puts it in the projection already.
                facts::ensure_profile(txn, tenant, &profile, now).await?;
            }
            facts::record_event_buckets(txn, tenant, &profile, &ev).await?;
            record_times(txn, tenant, &[(ev.event_id.as_str(), earned)]).await?;
        }
        w.facts_changed();
        w.lead.last_activity_at = Some(w.lead.last_activity_at.map_or(earned, |a| a.max(earned)));
        if defs.sla_kinds.contains(&ev.kind)
            && defs
                .machine
                .stage(&w.lead.stage)
                .and_then(|s| s.sla.as_ref())
                .is_some_and(|s| s.met_by.contains(&ev.kind))
        {
            let by = format!("event:{}", ev.kind);
            leads::settle_open_slas(txn, tenant, &profile, leads::SLA_MET, &by, now).await?;
        }
        let ev_view = event_view(&ev);
        let ctx = w.ctx();
        for r in defs.rules_for_event(&ev.kind) {
            if !r
                .filter
                .as_ref()
                .is_none_or(|f| rules::evaluate(f, &ev_view, &ctx))
            {
                continue;
            }
            if let Some(c) = &r.condition {
                let f = w.view().await?;
                if !rules::evaluate(c, f, &ctx) {
                    continue;
                }
            }
            let prior = if r.caps.is_empty() {
                Vec::new()
            } else {
                let (prior, seen) =
                    ledger::prior(txn, tenant, &profile, &r.id, &ev.event_id).await?;
                if seen {
                    continue;
                }
                prior
            };
            let a = crate::domain::points::award(r.points, &r.caps, &prior, earned, w.zone);
            let m = &defs.models[r.model];
            let e = NewEntry {
                model_id: m.id.clone(),
                rule_id: r.id.clone(),
                kind: ledger::EVENT,
                source_key: ev.event_id.clone(),
                event_kind: Some(ev.kind.clone()),
                points: r.points,
                delta: a.delta,
                capped: a.capped,
                earned,
                expires_at: m.decay.expires_after().map(|d| earned + d),
                cause_id: Some(env.id.to_string()),
                note: None,
            };
            w.add_entry(r.model, e).await?;
        }
        w.settle().await?;
        w.finish().await?;
        Ok(Outcome::Applied)
    }

    pub(super) async fn on_updated(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        env: &Envelope,
        u: &ProfileUpdated,
        now: DateTime<Utc>,
        prep: Prep<'_>,
    ) -> Result<Outcome, ScoreError> {
        let tenant = env.tenant_id.as_str();
        let (lead, created) = match prep.lead {
            Some(l) => l,
            None => {
                self.acquire(txn, defs, tenant, &u.profile_id, false, now)
                    .await?
            }
        };
        let applied = facts::apply_profile(txn, tenant, u, now).await?;
        if !lead.active() {
            // A profile merged away: its facts are kept in case the merge is undone.
            return Ok(Outcome::Applied);
        }
        let mut w = self
            .open(
                txn,
                defs,
                lead,
                created,
                now,
                Self::cause(env, ScoreCause::State),
                prep.outbox,
            )
            .await?;
        if applied.is_some() {
            w.lead.owner = leads::owner_of(&u.relations);
            w.facts_changed();
        }
        w.settle().await?;
        w.finish().await?;
        Ok(Outcome::Applied)
    }

    pub(super) async fn on_tag(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        env: &Envelope,
        t: &TagChanged,
        now: DateTime<Utc>,
        prep: Prep<'_>,
    ) -> Result<Outcome, ScoreError> {
        let tenant = env.tenant_id.as_str();
        let (lead, created) = match prep.lead {
            Some(l) => l,
            None => {
                self.acquire(txn, defs, tenant, &t.profile_id, true, now)
                    .await?
            }
        };
        let profile = lead.profile.clone();
        let present = t.change == TagChange::Added;
        let at = whole(t.at);
        if tag_is_newer(txn, tenant, &profile, &t.tag_id, at, present).await? {
            facts::ensure_profile(txn, tenant, &profile, now).await?;
            if present {
                facts::set_tag(txn, tenant, &profile, &t.tag_id).await?;
            } else {
                facts::unset_tag(txn, tenant, &profile, &t.tag_id).await?;
            }
        }
        let mut w = self
            .open(
                txn,
                defs,
                lead,
                created,
                now,
                Self::cause(env, ScoreCause::State),
                prep.outbox,
            )
            .await?;
        w.settle().await?;
        w.finish().await?;
        Ok(Outcome::Applied)
    }
}
