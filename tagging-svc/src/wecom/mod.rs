//! WeCom corp-tag sync: the mirror of each corp's tag library ([`mirror`]) and the write-back of
//! tag changes in synced groups to the reps' external contacts ([`worker`]), both under one
//! per-corp rate limit shared by every replica ([`platform::cache::RateLimiter`]), with access
//! tokens from the gateway (`[tagging.wechat]`; this service never holds a secret).
//!
//! Consumes `channel.wecom.external_tag.*` ([`consume`]: asks for a mirror sync). Writes
//! `corp_tags`, `corp_tag_syncs`, linked `tag_groups` / `tags`, and the status of
//! `tag_sync_queue` items (queued by [`crate::store::writeback`] in the transaction of each
//! tag-set change).

pub mod config;
pub(crate) mod consume;
pub mod mirror;
pub mod plan;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use platform::cache::Cache;
use platform::role::RoleError;
use platform::Deps;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use wechat::api::WechatAccess;

pub use self::config::WecomSyncConfig;
use self::mirror::Mirror;
use self::worker::Worker;
use platform::cache::RateLimiter;

/// The mirror and the write-back worker of one process. Cheap to clone.
#[derive(Clone)]
pub struct WecomSync {
    pub mirror: Mirror,
    pub worker: Worker,
}

impl WecomSync {
    /// Both on `db`, calling WeChat through `access`, rate-limited through `cache`.
    pub fn new(
        db: DatabaseConnection,
        access: WechatAccess,
        cache: Arc<dyn Cache>,
        cfg: WecomSyncConfig,
    ) -> Self {
        let limiter = RateLimiter::new(cache, "wecom_sync", cfg.rate_per_minute, cfg.rate_burst);
        let cfg = Arc::new(cfg);
        WecomSync {
            mirror: Mirror {
                db: db.clone(),
                access: access.clone(),
                limiter: limiter.clone(),
                lease: Duration::from_secs(cfg.lease_secs),
                failure_pause: cfg.retry_delay(1, false),
                refresh: (cfg.mirror_refresh_secs > 0)
                    .then(|| Duration::from_secs(cfg.mirror_refresh_secs)),
                poll: Duration::from_millis(cfg.poll_ms),
            },
            worker: Worker {
                db,
                access,
                limiter,
                cfg,
            },
        }
    }

    /// Runs the worker and the mirror under `tasks` until `shutdown`.
    pub fn spawn(
        &self,
        tasks: &platform::tasks::Tasks,
        shutdown: &CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        // A pass waits for WeChat's rate limits at most this long.
        const DEADLINE: Duration = Duration::from_secs(600);
        let (worker, mirror) = (self.worker.clone(), self.mirror.clone());
        let (s1, s2) = (shutdown.clone(), shutdown.clone());
        vec![
            tasks.spawn(
                crate::ROLE,
                "tagging.wecom_writeback",
                Some(DEADLINE),
                shutdown.clone(),
                move |beat| worker.clone().run(s1.clone(), beat),
            ),
            tasks.spawn(
                crate::ROLE,
                "tagging.wecom_mirror",
                Some(DEADLINE),
                shutdown.clone(),
                move |beat| mirror.clone().run(s2.clone(), beat),
            ),
        ]
    }
}

/// Builds and starts the sync `cfg` asks for (`None` when `tagging.wechat.enabled = false`:
/// changes stay queued until it is on), with the handles of its supervised tasks.
pub fn start(
    cfg: &crate::Config,
    db: &DatabaseConnection,
    deps: &Deps,
) -> Result<(Option<WecomSync>, Vec<tokio::task::JoinHandle<()>>), RoleError> {
    let access = WechatAccess::from_config(&cfg.wechat).map_err(|message| RoleError::Other {
        role: crate::ROLE,
        message: format!("tagging.wechat: {message}"),
    })?;
    let Some(access) = access else {
        tracing::info!("WeCom corp-tag sync off (tagging.wechat.enabled = false)");
        return Ok((None, Vec::new()));
    };
    tracing::info!(gateway = %cfg.wechat.gateway_url, "WeCom corp-tag sync on");
    let sync = WecomSync::new(
        db.clone(),
        access,
        deps.cache.clone(),
        cfg.wecom_sync.clone(),
    );
    let handles = sync.spawn(&deps.tasks, &deps.shutdown);
    Ok((Some(sync), handles))
}
