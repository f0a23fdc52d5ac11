//! Tags added or taken back for a reason (an operator, a rep's WeCom tag), with the rules reading
//! them settled; an operator's request run again on contention.

use std::collections::BTreeSet;

use proto::tagging::TagChanged;
use sea_orm::DatabaseTransaction;

use crate::domain::At;
use crate::store::members::{self, MemberError, Reason, TagInfo};
use crate::store::rules::Trigger;
use crate::store::segments;

use super::Tagger;

impl Tagger {
    /// Adds or removes a tag for `why`, then settles the rules reading it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn change(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        profile: &str,
        info: &TagInfo,
        add: bool,
        why: &Reason,
        at: &At,
    ) -> Result<Vec<TagChanged>, MemberError> {
        let mut out = if add {
            members::add(txn, tenant, profile, info, why, at.now).await?
        } else {
            // Each source takes back only its own reason: an operator's untag does not undo a
            // rule (change the rule for that), a trigger's does not undo an operator.
            let only = Some((why.source, why.origin.as_str()));
            members::remove(txn, tenant, profile, info, only, why, at.now).await?
        };
        if !out.is_empty() {
            let tags: BTreeSet<String> = out.iter().map(|c| c.tag_id.clone()).collect();
            out.extend(
                self.engine
                    .settle(txn, tenant, profile, Trigger::Tags(tags), at)
                    .await?,
            );
        }
        Ok(out)
    }

    /// An operator tags (or takes back a manual tag from) a profile by hand; a profile the
    /// projection does not hold yet is added to it (for callers that know the profile exists,
    /// and tests; a request goes through [`Tagger::manual_known`]). Run again after a short
    /// pause when it meets contention (two operators creating the same new profile's facts, a
    /// deadlock, a busy SQLite database).
    pub async fn manual(
        &self,
        tenant: &str,
        profile: &str,
        tag_id: &str,
        add: bool,
        operator: &str,
    ) -> Result<Vec<TagChanged>, MemberError> {
        self.manual_retried(tenant, profile, tag_id, add, operator, false)
            .await
    }

    /// [`Tagger::manual`] for a profile the tenant's projection holds already (the API: a
    /// profile tagging never heard of for this tenant — unknown, or another tenant's — is
    /// [`MemberError::UnknownProfile`], and nothing is written).
    pub async fn manual_known(
        &self,
        tenant: &str,
        profile: &str,
        tag_id: &str,
        add: bool,
        actor: &str,
    ) -> Result<Vec<TagChanged>, MemberError> {
        self.manual_retried(tenant, profile, tag_id, add, actor, true)
            .await
    }

    async fn manual_retried(
        &self,
        tenant: &str,
        profile: &str,
        tag_id: &str,
        add: bool,
        operator: &str,
        known_only: bool,
    ) -> Result<Vec<TagChanged>, MemberError> {
        // The tenant's rules are read into their cache first: a transaction holding a pooled
        // connection (and on SQLite the write lock) should not wait for another connection.
        self.engine.rules.get(tenant).await?;
        let attempts = self.cfg.tx_attempts;
        platform::db::retry_on_contention("tagging.manual", attempts, || {
            self.manual_once(tenant, profile, tag_id, add, operator, known_only)
        })
        .await
        .0
    }

    async fn manual_once(
        &self,
        tenant: &str,
        profile: &str,
        tag_id: &str,
        add: bool,
        operator: &str,
        known_only: bool,
    ) -> Result<Vec<TagChanged>, MemberError> {
        let at = self.at(tenant);
        let txn = platform::db::begin_write(&self.db).await?;
        let info = members::tag_info(&txn, tenant, tag_id)
            .await?
            .ok_or_else(|| MemberError::UnknownTag(tag_id.to_string()))?;
        if known_only {
            if !segments::has_profile(&txn, tenant, profile).await? {
                return Err(MemberError::UnknownProfile(profile.to_string()));
            }
        } else {
            facts::ensure_profile(&txn, tenant, profile, at.now).await?;
        }
        facts::lock_profile(&txn, tenant, profile).await?;
        let out = self
            .change(
                &txn,
                tenant,
                profile,
                &info,
                add,
                &Reason::manual(operator),
                &at,
            )
            .await?;
        members::publish(&txn, tenant, &out).await?;
        txn.commit().await?;
        Ok(out)
    }
}
