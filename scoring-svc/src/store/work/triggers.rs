//! Triggers of a [`Work`], as stored: what the decision reads (the score triggers' states, the
//! firing keys recorded for the profile) and a firing it decided, recorded once (the unique
//! key) with the results of its actions. Trigger states are written at `finish`.

use std::collections::{BTreeSet, HashMap};

use sea_orm::sea_query::{Expr, Query};
use sea_orm::{DbErr, FromQueryResult};

use crate::domain::triggers::{TrigState, Trigger};
use crate::store::migrations::{TriggerFirings as F, TriggerState as TS};
use crate::store::{exec, fetch, is_duplicate};

use super::Work;

impl Work<'_> {
    /// Loads the score triggers' states of the profile (once).
    pub(super) async fn trigger_states(&mut self) -> Result<(), DbErr> {
        if self.trig.is_some() {
            return Ok(());
        }
        #[derive(FromQueryResult)]
        struct Row {
            trigger_id: String,
            above: bool,
            seq: i64,
        }
        let q = Query::select()
            .columns([TS::TriggerId, TS::Above, TS::Seq])
            .from(TS::Table)
            .and_where(Expr::col(TS::TenantId).eq(&self.tenant))
            .and_where(Expr::col(TS::ProfileId).eq(&self.lead.profile))
            .to_owned();
        let mut m = HashMap::new();
        for r in fetch::<Row, _>(self.txn, &q).await? {
            m.insert(
                r.trigger_id,
                TrigState {
                    above: Some(r.above),
                    seq: r.seq,
                    seen: None,
                    changed: false,
                },
            );
        }
        self.trig = Some(m);
        Ok(())
    }

    /// The firing keys (trigger id, seq) recorded for the profile, of the tenant's triggers.
    pub(super) async fn recorded_firings(&self) -> Result<BTreeSet<(String, i64)>, DbErr> {
        #[derive(FromQueryResult)]
        struct Row {
            trigger_id: String,
            seq: i64,
        }
        let ids: Vec<String> = self.defs.triggers.iter().map(|t| t.id.clone()).collect();
        if ids.is_empty() {
            return Ok(BTreeSet::new());
        }
        let q = Query::select()
            .columns([F::TriggerId, F::Seq])
            .from(F::Table)
            .and_where(Expr::col(F::TenantId).eq(&self.tenant))
            .and_where(Expr::col(F::ProfileId).eq(&self.lead.profile))
            .and_where(Expr::col(F::TriggerId).is_in(ids))
            .to_owned();
        let rows = fetch::<Row, _>(self.txn, &q).await?;
        Ok(rows.into_iter().map(|r| (r.trigger_id, r.seq)).collect())
    }

    /// Records a firing decided with the results of its actions (once per trigger, profile and
    /// key: the unique key).
    pub(super) async fn record_firing(
        &mut self,
        t: &Trigger,
        seq: i64,
        kind: &str,
        value: Option<f64>,
        stage: Option<String>,
        results: Vec<serde_json::Value>,
    ) -> Result<(), DbErr> {
        let q = Query::insert()
            .into_table(F::Table)
            .columns([
                F::TenantId,
                F::TriggerId,
                F::ProfileId,
                F::Seq,
                F::Kind,
                F::Value,
                F::Stage,
                F::FiredAt,
                F::CauseId,
                F::Result,
            ])
            .values_panic([
                self.tenant.clone().into(),
                t.id.clone().into(),
                self.lead.profile.clone().into(),
                seq.into(),
                kind.into(),
                value.into(),
                stage.into(),
                self.now.into(),
                Some(self.cause.id.clone()).into(),
                serde_json::Value::Array(results).to_string().into(),
            ])
            .to_owned();
        match exec(self.txn, &q).await {
            Ok(_) => {
                metrics::counter!(crate::metrics::TRIGGER_FIRED).increment(1);
                Ok(())
            }
            // Only a key the decision could not see: a new history entry's id that a firing
            // recorded when the trigger watched a score has already.
            Err(e) if is_duplicate(&e) => {
                tracing::warn!(trigger_id = %t.id, seq, profile_id = %self.lead.profile, "Firing key recorded already; firing not recorded again");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
