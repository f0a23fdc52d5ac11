//! Keeping the corp-tag mirror up to date: a corp's library is read with `get_corp_tag_list`
//! (under the corp's rate limit, with a token from the gateway) and written by
//! [`corp_tags::apply`] whenever a sync was asked for — a `change_external_tag` event, the API,
//! start-up, the periodic refresh. One process at a time syncs a corp (a claim in
//! `corp_tag_syncs`); a request arriving during a sync makes another one follow it.
//!
//! [`Mirror::push`] goes the other way for a local group marked for a corp: its tags that are
//! not in WeCom yet are created with `add_corp_tag` (the group too, when it is not linked to one)
//! and linked, so write-backs of those tags can happen.

use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{DatabaseConnection, DbErr};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use wechat::api::{
    ApiError, AppRef, Auth, CorpTagGroup, CorpTagGroupRef, NewCorpTag, WechatAccess,
};

use crate::store::catalog::CatalogError;
use crate::store::corp_tags::{self, MirrorReport, PushPlan};
use platform::cache::RateLimiter;

/// Why a mirror sync did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// Another process is syncing this corp now (the request is recorded: it syncs again after).
    #[error("another process is syncing this corp's tag library; it will run again after")]
    Busy,
    #[error("WeChat: {0}")]
    Wechat(#[from] ApiError),
    #[error("no WeCom call slot free in time under the corp's rate limit")]
    NoSlot,
    #[error("rate limit counter: {0}")]
    Limiter(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// Why a push to WeCom did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The group cannot be pushed as it is (see [`corp_tags::push_plan`]).
    #[error(transparent)]
    Refused(#[from] CatalogError),
    #[error(transparent)]
    Mirror(#[from] MirrorError),
}

impl From<DbErr> for PushError {
    fn from(e: DbErr) -> Self {
        PushError::Mirror(MirrorError::Db(e))
    }
}

/// What [`Mirror::push`] did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PushReport {
    /// The local group.
    pub group_id: String,
    /// The corp group it is linked to.
    pub wecom_group_id: Option<String>,
    /// Corp tags created.
    pub created: usize,
    /// Local tags linked to corp tags of the same name that were there already.
    pub linked: usize,
    /// The mirror sync after it (`None` when there was nothing to push).
    pub mirror: Option<MirrorReport>,
}

/// What the WeCom side of a push did.
#[derive(Debug, Default)]
struct Pushed {
    wecom_group_id: String,
    created: usize,
    linked: usize,
}

/// Syncs corp-tag mirrors. Cheap to clone.
#[derive(Clone)]
pub struct Mirror {
    pub(super) db: DatabaseConnection,
    pub(super) access: WechatAccess,
    pub(super) limiter: RateLimiter,
    pub(super) lease: Duration,
    pub(super) failure_pause: Duration,
    pub(super) refresh: Option<Duration>,
    pub(super) poll: Duration,
}

impl Mirror {
    /// Reads `corp`'s tag library now and writes the mirror and the linked local groups.
    pub async fn sync(&self, tenant: &str, corp: &str) -> Result<MirrorReport, MirrorError> {
        let now = Utc::now();
        corp_tags::request_sync(&self.db, tenant, corp, now).await?;
        self.sync_claimed(tenant, corp).await
    }

    /// Creates in WeCom what `add_corp_tag` must for the local group `group_id` (see
    /// [`corp_tags::push_plan`]): its tags not in WeCom yet, in its linked corp group or in a new
    /// one of its name. Tags whose names the corp group has already are linked, not created, so
    /// a push that failed half way is simply run again. Then the library is mirrored again.
    /// Works under the corp's sync claim, so no mirror sync runs meanwhile.
    pub async fn push(&self, tenant: &str, group_id: &str) -> Result<PushReport, PushError> {
        let plan = corp_tags::push_plan(&self.db, tenant, group_id).await?;
        let corp = plan.group.corp_id.clone().unwrap_or_default();
        if plan.tags.is_empty() {
            return Ok(PushReport {
                group_id: plan.group.id.clone(),
                wecom_group_id: plan.group.wecom_group_id.clone(),
                created: 0,
                linked: 0,
                mirror: None,
            });
        }
        corp_tags::request_sync(&self.db, tenant, &corp, Utc::now()).await?;
        let (mirror, pushed) = self.claimed(tenant, &corp, Some(&plan)).await?;
        let pushed = pushed.unwrap_or_default();
        Ok(PushReport {
            group_id: plan.group.id.clone(),
            wecom_group_id: Some(pushed.wecom_group_id),
            created: pushed.created,
            linked: pushed.linked,
            mirror: Some(mirror),
        })
    }

    async fn sync_claimed(&self, tenant: &str, corp: &str) -> Result<MirrorReport, MirrorError> {
        self.claimed(tenant, corp, None).await.map(|(r, _)| r)
    }

    /// Under the corp's claim: the push (when asked) and the mirror sync.
    async fn claimed(
        &self,
        tenant: &str,
        corp: &str,
        push: Option<&PushPlan>,
    ) -> Result<(MirrorReport, Option<Pushed>), MirrorError> {
        let lease = chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX);
        let Some(claim) = corp_tags::claim_sync(&self.db, tenant, corp, Utc::now(), lease).await?
        else {
            return Err(MirrorError::Busy);
        };
        let result: Result<_, MirrorError> = async {
            let pushed = match push {
                Some(plan) => Some(self.create_in_wecom(tenant, corp, plan).await?),
                None => None,
            };
            Ok((self.fetch_and_apply(tenant, corp).await?, pushed))
        }
        .await;
        let now = Utc::now();
        let outcome = match &result {
            Ok((report, _)) => {
                tracing::info!(
                    tenant_id = tenant,
                    corp_id = corp,
                    groups = report.groups,
                    tags = report.tags,
                    deleted = report.deleted,
                    local_created = report.local_created,
                    local_renamed = report.local_renamed,
                    local_retired = report.local_retired,
                    "Corp tag library mirrored"
                );
                metrics::counter!(crate::metrics::WECOM_MIRROR_SYNCS, "outcome" => "ok")
                    .increment(1);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(tenant_id = tenant, corp_id = corp, error = %e, "Corp tag library sync failed; retried later");
                metrics::counter!(crate::metrics::WECOM_MIRROR_SYNCS, "outcome" => "error")
                    .increment(1);
                let pause =
                    chrono::Duration::from_std(self.failure_pause).unwrap_or(chrono::Duration::MAX);
                Err((e.to_string(), now + pause))
            }
        };
        corp_tags::finish_sync(&self.db, tenant, corp, &claim, outcome, now).await?;
        result
    }

    /// One WeChat call under the corp's rate limit, timed and counted by endpoint.
    async fn call<T, F>(&self, corp: &str, endpoint: &'static str, f: F) -> Result<T, MirrorError>
    where
        F: std::future::Future<Output = Result<T, ApiError>>,
    {
        match self.limiter.reserve(corp, self.lease / 2).await {
            Ok(Some(wait)) => tokio::time::sleep(wait).await,
            Ok(None) => return Err(MirrorError::NoSlot),
            Err(e) => return Err(MirrorError::Limiter(e.to_string())),
        }
        let started = Instant::now();
        let answer = f.await;
        metrics::histogram!(crate::metrics::WECOM_CALL_SECONDS, "endpoint" => endpoint)
            .record(started.elapsed().as_secs_f64());
        let outcome = match &answer {
            Ok(_) => "ok",
            Err(e) if e.is_transient() => "transient",
            Err(_) => "permanent",
        };
        metrics::counter!(crate::metrics::WECOM_CALLS, "endpoint" => endpoint, "outcome" => outcome).increment(1);
        Ok(answer?)
    }

    async fn library(&self, tenant: &str, corp: &str) -> Result<Vec<CorpTagGroup>, MirrorError> {
        let app = AppRef::wecom_contact(corp);
        let tokens = self.access.tokens.tenant(tenant);
        let client = &self.access.client;
        self.call(
            corp,
            "get_corp_tag_list",
            client.wecom_corp_tag_list(Auth::delegated(&app, &tokens), &[], &[]),
        )
        .await
    }

    async fn create_in_wecom(
        &self,
        tenant: &str,
        corp: &str,
        plan: &PushPlan,
    ) -> Result<Pushed, MirrorError> {
        let library = self.library(tenant, corp).await?;
        let live = |g: &&CorpTagGroup| !g.deleted;
        let existing = match plan.group.wecom_group_id.as_deref() {
            Some(id) => library.iter().filter(live).find(|g| g.group_id == id),
            // WeCom adds to the group of that name when there is one.
            None => library
                .iter()
                .filter(live)
                .find(|g| g.group_name == plan.group.name),
        };
        let mut group = CorpTagGroup {
            group_id: existing
                .map(|g| g.group_id.clone())
                .or_else(|| plan.group.wecom_group_id.clone())
                .unwrap_or_default(),
            group_name: plan.group.name.clone(),
            create_time: 0,
            order: 0,
            deleted: false,
            tag: Vec::new(),
        };
        let mut missing = Vec::new();
        for t in &plan.tags {
            let name = t.name.trim();
            match existing.and_then(|g| g.tag.iter().find(|c| !c.deleted && c.name == name)) {
                Some(c) => group.tag.push(c.clone()),
                None => missing.push(NewCorpTag {
                    name: name.to_string(),
                    order: 0,
                }),
            }
        }
        let linked = group.tag.len();
        if !missing.is_empty() {
            let app = AppRef::wecom_contact(corp);
            let tokens = self.access.tokens.tenant(tenant);
            let target = if group.group_id.is_empty() {
                CorpTagGroupRef::Name {
                    name: &plan.group.name,
                    order: 0,
                }
            } else {
                CorpTagGroupRef::Id(&group.group_id)
            };
            let client = &self.access.client;
            let created = self
                .call(
                    corp,
                    "add_corp_tag",
                    client.wecom_add_corp_tag(Auth::delegated(&app, &tokens), target, &missing),
                )
                .await?;
            group.group_id = created.group_id;
            group.tag.extend(created.tag);
        }
        corp_tags::link_pushed(&self.db, plan, &group).await?;
        Ok(Pushed {
            wecom_group_id: group.group_id,
            created: missing.len(),
            linked,
        })
    }

    async fn fetch_and_apply(&self, tenant: &str, corp: &str) -> Result<MirrorReport, MirrorError> {
        let library = self.library(tenant, corp).await?;
        Ok(corp_tags::apply(&self.db, tenant, corp, &library, Utc::now()).await?)
    }

    /// Asks for every known corp to be read again.
    pub async fn request_all(&self) -> Result<usize, DbErr> {
        let now = Utc::now();
        let corps = corp_tags::known_corps(&self.db).await?;
        for (tenant, corp) in &corps {
            corp_tags::request_sync(&self.db, tenant, corp, now).await?;
        }
        Ok(corps.len())
    }

    /// Syncs every corp a sync is wanted for and nobody runs; returns how many were synced.
    pub async fn pass(&self) -> Result<usize, DbErr> {
        let mut done = 0;
        for (tenant, corp) in corp_tags::wanted(&self.db, Utc::now()).await? {
            match self.sync_claimed(&tenant, &corp).await {
                Ok(_) => done += 1,
                Err(MirrorError::Db(e)) => return Err(e),
                // Logged and recorded in `corp_tag_syncs`; tried again after the pause.
                Err(_) => {}
            }
        }
        Ok(done)
    }

    /// Syncs every known corp at start, then whatever is asked for, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken, beat: platform::tasks::Beat) {
        let mut last_refresh = None;
        loop {
            beat.beat();
            let refresh_due = match (self.refresh, last_refresh) {
                (_, None) => true,
                (Some(every), Some(at)) => tokio::time::Instant::now() >= at + every,
                (None, Some(_)) => false,
            };
            if refresh_due {
                match self.request_all().await {
                    Ok(_) => last_refresh = Some(tokio::time::Instant::now()),
                    Err(e) => tracing::warn!(error = %e, "Asking for corp tag syncs failed"),
                }
            }
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "Corp tag mirror pass failed; next pass retries");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }
}
