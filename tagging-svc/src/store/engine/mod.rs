//! Real-time rule evaluation for one profile, inside the transaction of the change that may
//! affect it: the rules the change can affect (the reverse index) are evaluated on the profile's
//! facts, their tags added or removed, rules reading a tag that changed are evaluated in turn
//! (chained rules settle, up to a bound), and each windowed rule's next possible change without
//! a new event is scheduled (window exits happen on time, not at the next event).
//!
//! Here: the engine, settling as load → decide → write. `load` reads the profile's memberships
//! and, round by round, the facts the round's rules look at; the whole settling is decided in
//! memory by [`crate::domain::settle`]; `write` then makes its membership changes and schedules.
//! The real-time saved segments follow, on the facts as settled: decided by
//! [`crate::domain::segment`], written to the segments' kept members.

mod load;
mod write;

use facts::LoadOptions;
use proto::tagging::TagChanged;
use rules::ProfileFacts;
use sea_orm::{DatabaseTransaction, DbErr};

use std::collections::BTreeSet;

use super::rules::{RuleCache, Trigger};
use super::saved::kept;
use crate::domain::segment;
use crate::domain::settle::Settling;
use crate::domain::At;

/// Evaluates rules for profiles.
#[derive(Clone)]
pub struct Engine {
    pub rules: RuleCache,
    pub max_rounds: u32,
}

impl Engine {
    /// Settles the profile after `trigger`: returns every change of its tag set. Then the
    /// real-time saved segments the trigger or those changes may affect take the profile in or
    /// out ([`crate::domain::segment`]).
    pub async fn settle(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        profile: &str,
        trigger: Trigger,
        at: &At,
    ) -> Result<Vec<TagChanged>, DbErr> {
        let set = self.rules.get(tenant).await?;
        let cands = set.candidates(&trigger);
        if cands.is_empty()
            && set
                .segment_candidates(&trigger, &BTreeSet::new())
                .is_empty()
        {
            return Ok(Vec::new());
        }
        let mut loaded: Option<(LoadOptions, ProfileFacts)> = None;
        let changes = if cands.is_empty() {
            Vec::new()
        } else {
            let holdings = load::holdings(txn, tenant, profile, &set).await?;
            let mut settling = Settling::new(cands, holdings, self.max_rounds);
            while let Some(cands) = settling.next_round() {
                let want = load::options(cands, at);
                let facts = load::facts(txn, tenant, profile, &mut loaded, want).await?;
                settling.round(&*set, facts, at);
            }
            let decision = settling.finish();
            if decision.cut {
                metrics::counter!(crate::metrics::CHAIN_CUT).increment(1);
                tracing::warn!(profile_id = %profile, "Chained rules did not settle within the round limit");
            }
            metrics::counter!(crate::metrics::RULE_EVALUATIONS)
                .increment(decision.verdicts.len() as u64);
            write::apply(txn, tenant, profile, &set, &decision, at).await?
        };
        let changed: BTreeSet<String> = changes.iter().map(|c| c.tag_id.clone()).collect();
        let segs = set.segment_candidates(&trigger, &changed);
        if !segs.is_empty() {
            let want = load::options(&segs, at);
            let facts = load::facts(txn, tenant, profile, &mut loaded, want).await?;
            segment::with_changes(facts, &changes);
            let ids: Vec<&str> = segs.iter().map(|s| s.id.as_str()).collect();
            let held = kept::held(txn, tenant, profile, &ids).await?;
            let verdicts = segment::decide(&segs, facts, &held, at);
            write::segments(txn, tenant, profile, &verdicts, at).await?;
        }
        Ok(changes)
    }
}
