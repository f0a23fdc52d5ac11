//! State rules of a [`Work`]: each rule holds its points while the profile matches and releases
//! them when it stops; what deleted or disabled rules still hold is released.

use sea_orm::DbErr;

use crate::store::ledger::{self, NewEntry};

use super::{Work, EPS};

impl Work<'_> {
    /// State rules: hold each rule's points while the profile matches, release them when it
    /// stops (and release what deleted or disabled rules still hold). Returns whether anything
    /// changed.
    pub(super) async fn reconcile_state(&mut self) -> Result<bool, DbErr> {
        if self.defs.state_rules.is_empty() && !self.force_state {
            return Ok(false);
        }
        if self.held.is_none() {
            self.held = Some(ledger::held(self.txn, &self.tenant, &self.lead.profile).await?);
        }
        let ctx = self.ctx();
        let defs = self.defs;
        let held = self.held.take().unwrap_or_default();
        let mut wanted: Vec<(usize, String, String, f64, f64, &'static str)> = Vec::new();
        let facts = self.view().await?;
        for r in &defs.state_rules {
            let target = if rules::evaluate(&r.condition, facts, &ctx) {
                r.points
            } else {
                0.0
            };
            let cur = held.get(&r.id).map_or(0.0, |h| h.1);
            if (target - cur).abs() > EPS {
                let note = if target != 0.0 {
                    "holds"
                } else {
                    "released: no longer matches"
                };
                wanted.push((
                    r.model,
                    r.id.clone(),
                    defs.models[r.model].id.clone(),
                    r.points,
                    target - cur,
                    note,
                ));
            }
        }
        for (rule, (model_id, sum)) in &held {
            if sum.abs() > EPS && !defs.state_rules.iter().any(|r| &r.id == rule) {
                if let Some(m) = defs.model_by_id(model_id) {
                    wanted.push((
                        m,
                        rule.clone(),
                        model_id.clone(),
                        0.0,
                        -sum,
                        "released: rule deleted or disabled",
                    ));
                }
            }
        }
        self.held = Some(held);
        let changed = !wanted.is_empty();
        for (model, rule, model_id, points, delta, note) in wanted {
            let e = NewEntry {
                model_id: model_id.clone(),
                rule_id: rule.clone(),
                kind: ledger::STATE,
                source_key: format!("state:{}", uuid::Uuid::now_v7().simple()),
                event_kind: None,
                points,
                delta,
                capped: None,
                earned: self.now,
                expires_at: None,
                cause_id: Some(self.cause.id.clone()),
                note: Some(note.to_string()),
            };
            self.add_entry(model, e).await?;
            if let Some(h) = self.held.as_mut() {
                h.entry(rule).or_insert((model_id, 0.0)).1 += delta;
            }
        }
        Ok(changed)
    }
}
