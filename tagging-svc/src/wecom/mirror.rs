//! Keeping the corp-tag mirror up to date: a corp's library is read with `get_corp_tag_list`
//! (under the corp's rate limit, with a token from the gateway) and written by
//! [`corp_tags::apply`] whenever a sync was asked for — a `change_external_tag` event, the API,
//! start-up, the periodic refresh. One process at a time syncs a corp (a claim in
//! `corp_tag_syncs`); a request arriving during a sync makes another one follow it.

use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{DatabaseConnection, DbErr};
use tokio_util::sync::CancellationToken;
use wechat::api::{ApiError, AppRef, Auth, WechatAccess};

use super::limiter::RateLimiter;
use super::{METRIC_CALLS, METRIC_CALL_SECONDS, METRIC_MIRROR_SYNCS};
use crate::store::corp_tags::{self, MirrorReport};

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

    async fn sync_claimed(&self, tenant: &str, corp: &str) -> Result<MirrorReport, MirrorError> {
        let lease = chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX);
        let Some(claim) = corp_tags::claim_sync(&self.db, tenant, corp, Utc::now(), lease).await?
        else {
            return Err(MirrorError::Busy);
        };
        let result = self.fetch_and_apply(tenant, corp).await;
        let now = Utc::now();
        let outcome = match &result {
            Ok(report) => {
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
                metrics::counter!(METRIC_MIRROR_SYNCS, "outcome" => "ok").increment(1);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(tenant_id = tenant, corp_id = corp, error = %e, "Corp tag library sync failed; retried later");
                metrics::counter!(METRIC_MIRROR_SYNCS, "outcome" => "error").increment(1);
                let pause =
                    chrono::Duration::from_std(self.failure_pause).unwrap_or(chrono::Duration::MAX);
                Err((e.to_string(), now + pause))
            }
        };
        corp_tags::finish_sync(&self.db, tenant, corp, &claim, outcome, now).await?;
        result
    }

    async fn fetch_and_apply(&self, tenant: &str, corp: &str) -> Result<MirrorReport, MirrorError> {
        match self.limiter.reserve(corp, self.lease / 2).await {
            Ok(Some(wait)) => tokio::time::sleep(wait).await,
            Ok(None) => return Err(MirrorError::NoSlot),
            Err(e) => return Err(MirrorError::Limiter(e.to_string())),
        }
        let app = AppRef::wecom_contact(corp);
        let tokens = self.access.tokens.tenant(tenant);
        let started = Instant::now();
        let library = self
            .access
            .client
            .wecom_corp_tag_list(Auth::delegated(&app, &tokens), &[], &[])
            .await;
        metrics::histogram!(METRIC_CALL_SECONDS, "endpoint" => "get_corp_tag_list")
            .record(started.elapsed().as_secs_f64());
        let outcome = match &library {
            Ok(_) => "ok",
            Err(e) if e.is_transient() => "transient",
            Err(_) => "permanent",
        };
        metrics::counter!(METRIC_CALLS, "endpoint" => "get_corp_tag_list", "outcome" => outcome)
            .increment(1);
        Ok(corp_tags::apply(&self.db, tenant, corp, &library?, Utc::now()).await?)
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
    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_refresh = None;
        loop {
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
