//! The write-back worker: claims due contacts from `tag_sync_queue` (see
//! [`crate::store::sync_queue`]), sends each contact's net tag changes in one `mark_tag` call
//! under the corp's shared rate limit, and records the outcome of every item.
//!
//! Outcomes: accepted → `done`; "too many calls" (45009, 45011, 45033) and transient errors
//! (busy, transport, token refresh, the gateway down) → `pending` again after a growing delay,
//! until `max_attempts` → `failed`; errcodes that can never succeed — the rep is not the
//! customer's follower or unknown (84061, 60111), a malformed external_userid (40096), a corp
//! tag that is gone or not this app's (40068, 301002) — → `failed` at once. WeCom rejects a
//! whole call for one bad tag, so a call of several tags failing on a tag is split into one
//! call per tag, each judged on its own.
//!
//! Metrics: `scrm_tagging_wecom_sync_items_total{outcome}` (`done`, `retry`, `failed`,
//! `superseded`, `released`), `scrm_tagging_wecom_calls_total{endpoint, outcome}` (`ok`,
//! `rate_limited`, `transient`, `permanent`), `scrm_tagging_wecom_call_seconds{endpoint}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use tokio_util::sync::CancellationToken;
use wechat::api::{ApiError, AppRef, Auth, MarkTagRequest, WechatAccess};

use super::config::WecomSyncConfig;
use super::plan::Action;
use crate::store::sync_queue::{self, Claimed, ClaimedItem, Contact, Outcome};
use platform::cache::RateLimiter;

/// What to do after a failed `mark_tag` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again later (counts as an attempt); `rate_limited` waits at least the rate-limit
    /// delay.
    Retry { rate_limited: bool },
    /// It will never work: failed now.
    Fail,
    /// One of several tags is at fault: send each on its own.
    Split,
}

/// The verdict on `e` for a call carrying `tags` tags.
pub fn verdict(e: &ApiError, tags: usize) -> Verdict {
    match e.errcode() {
        Some(45009 | 45011 | 45033) => Verdict::Retry { rate_limited: true },
        Some(84061 | 60111 | 40096) => Verdict::Fail,
        Some(40068 | 301002) if tags > 1 => Verdict::Split,
        Some(40068 | 301002) => Verdict::Fail,
        // Anything else may be a passing state or a configuration being fixed; attempts bound
        // it.
        _ => Verdict::Retry {
            rate_limited: false,
        },
    }
}

/// The result of one call.
enum Call {
    Ok,
    /// No rate-limit slot before the lease would run out: not sent.
    NoSlot,
    Failed(ApiError),
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Contacts claimed.
    pub contacts: usize,
    /// `mark_tag` calls made.
    pub calls: usize,
    /// Items superseded while claiming.
    pub superseded: u64,
}

/// Sends queued tag changes to WeCom. Cheap to clone; any number may run, in any number of
/// processes.
#[derive(Clone)]
pub struct Worker {
    pub(super) db: DatabaseConnection,
    pub(super) access: WechatAccess,
    pub(super) limiter: RateLimiter,
    pub(super) cfg: Arc<WecomSyncConfig>,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Worker {
    /// One pass: claims up to a batch of due contacts and sends each.
    pub async fn pass(&self) -> Result<PassReport, DbErr> {
        let now = Utc::now();
        let lease = Duration::from_secs(self.cfg.lease_secs);
        let claim =
            sync_queue::claim(&self.db, now, u64::from(self.cfg.batch), chrono(lease)).await?;
        if claim.superseded > 0 {
            metrics::counter!(crate::metrics::WECOM_SYNC_ITEMS, "outcome" => "superseded")
                .increment(claim.superseded);
        }
        let mut report = PassReport {
            contacts: claim.claimed.len(),
            superseded: claim.superseded,
            ..PassReport::default()
        };
        for c in &claim.claimed {
            report.calls += self.send(c).await?;
        }
        Ok(report)
    }

    /// Sends one claimed contact; returns the calls made.
    async fn send(&self, c: &Claimed) -> Result<usize, DbErr> {
        match self.call(c, &c.items).await {
            Call::Ok => {
                self.finish(c, &c.items, &Outcome::Done).await?;
                Ok(1)
            }
            Call::NoSlot => {
                self.release(c, &c.items).await?;
                Ok(0)
            }
            Call::Failed(e) => match verdict(&e, c.items.len()) {
                Verdict::Split => {
                    let mut calls = 1;
                    for item in &c.items {
                        let one = std::slice::from_ref(item);
                        match self.call(c, one).await {
                            Call::Ok => self.finish(c, one, &Outcome::Done).await?,
                            Call::NoSlot => self.release(c, one).await?,
                            Call::Failed(e) => self.failed(c, one, &e, verdict(&e, 1)).await?,
                        }
                        calls += 1;
                    }
                    Ok(calls)
                }
                v => {
                    self.failed(c, &c.items, &e, v).await?;
                    Ok(1)
                }
            },
        }
    }

    /// One `mark_tag` call for `items` of the contact, once the rate limit gives a slot.
    async fn call(&self, c: &Claimed, items: &[ClaimedItem]) -> Call {
        let Contact {
            tenant_id,
            corp_id,
            user_id,
            external_userid,
        } = &c.contact;
        // Two requests (a token refresh and the retry) must fit in the lease after the wait;
        // past that, another worker may take the contact over, so nothing more is sent.
        let timeout = self.access.client.options().request_timeout;
        let left = (c.lease_until - Utc::now()).to_std().unwrap_or_default();
        if left <= timeout * 3 {
            return Call::NoSlot;
        }
        match self.limiter.reserve(corp_id, left - timeout * 3).await {
            Ok(Some(wait)) => tokio::time::sleep(wait).await,
            Ok(None) => return Call::NoSlot,
            Err(e) => {
                tracing::warn!(error = %e, "Rate limit counter unavailable; write-back postponed");
                return Call::NoSlot;
            }
        }
        let pick = |a: Action| -> Vec<String> {
            items
                .iter()
                .filter(|i| i.action == a)
                .map(|i| i.wecom_tag_id.clone())
                .collect()
        };
        let request = MarkTagRequest {
            userid: user_id.clone(),
            external_userid: external_userid.clone(),
            add_tag: pick(Action::Add),
            remove_tag: pick(Action::Remove),
        };
        let app = AppRef::wecom_contact(corp_id);
        let tokens = self.access.tokens.tenant(tenant_id);
        let started = Instant::now();
        let result = self
            .access
            .client
            .wecom_mark_tag(Auth::delegated(&app, &tokens), &request)
            .await;
        metrics::histogram!(crate::metrics::WECOM_CALL_SECONDS, "endpoint" => "mark_tag")
            .record(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(()) => "ok",
            Err(e) => match verdict(e, items.len()) {
                Verdict::Retry { rate_limited: true } => "rate_limited",
                Verdict::Retry { .. } => "transient",
                Verdict::Fail | Verdict::Split => "permanent",
            },
        };
        metrics::counter!(crate::metrics::WECOM_CALLS, "endpoint" => "mark_tag", "outcome" => outcome)
            .increment(1);
        match result {
            Ok(()) => Call::Ok,
            Err(e) => {
                tracing::warn!(tenant_id = %tenant_id, corp_id = %corp_id, user_id = %user_id,
                    tags = items.len(), error = %e, "mark_tag failed");
                Call::Failed(e)
            }
        }
    }

    async fn finish(
        &self,
        c: &Claimed,
        items: &[ClaimedItem],
        outcome: &Outcome,
    ) -> Result<(), DbErr> {
        let n = sync_queue::finish(
            &self.db,
            &c.contact,
            items,
            c.lease_until,
            outcome,
            Utc::now(),
        )
        .await?;
        if n < items.len() as u64 {
            tracing::warn!(
                recorded = n,
                items = items.len(),
                "Write-back outcome recorded for part of a claim: its lease had run out"
            );
        }
        let label = match outcome {
            Outcome::Done => "done",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
            Outcome::Release { .. } => "released",
        };
        metrics::counter!(crate::metrics::WECOM_SYNC_ITEMS, "outcome" => label).increment(n);
        Ok(())
    }

    async fn release(&self, c: &Claimed, items: &[ClaimedItem]) -> Result<(), DbErr> {
        let at = Utc::now() + chrono::Duration::seconds(1);
        self.finish(c, items, &Outcome::Release { at }).await
    }

    async fn failed(
        &self,
        c: &Claimed,
        items: &[ClaimedItem],
        e: &ApiError,
        v: Verdict,
    ) -> Result<(), DbErr> {
        let now = Utc::now();
        for item in items {
            let outcome = match v {
                Verdict::Retry { rate_limited }
                    if item.attempts < i32::try_from(self.cfg.max_attempts).unwrap_or(i32::MAX) =>
                {
                    let delay = self
                        .cfg
                        .retry_delay(u32::try_from(item.attempts).unwrap_or(1), rate_limited);
                    Outcome::Retry {
                        at: retry_at(now, delay),
                        error: e.to_string(),
                    }
                }
                Verdict::Retry { .. } => Outcome::Failed {
                    error: format!("gave up after {} attempts: {e}", item.attempts),
                },
                Verdict::Fail | Verdict::Split => Outcome::Failed {
                    error: e.to_string(),
                },
            };
            self.finish(c, std::slice::from_ref(item), &outcome).await?;
        }
        Ok(())
    }

    /// Removes items done or superseded longer ago than the retention.
    pub async fn prune(&self) -> Result<u64, DbErr> {
        let keep = chrono::Duration::hours(
            i64::try_from(self.cfg.retention_hours).unwrap_or(i64::MAX / 3_600_000),
        );
        sync_queue::prune(&self.db, Utc::now() - keep).await
    }

    /// Passes until `shutdown`: at once again after a full batch, else after `poll_ms`; prunes
    /// old items every few minutes.
    pub async fn run(self, shutdown: CancellationToken, beat: platform::tasks::Beat) {
        let poll = Duration::from_millis(self.cfg.poll_ms);
        let mut backoff = poll;
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            beat.beat();
            if last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(600)) {
                match self.prune().await {
                    Ok(n) if n > 0 => tracing::debug!(removed = n, "Old write-back items pruned"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "Pruning write-back items failed"),
                }
                last_prune = Some(tokio::time::Instant::now());
            }
            let wait = match self.pass().await {
                Ok(r) if r.contacts >= self.cfg.batch as usize => Duration::ZERO,
                Ok(_) => {
                    backoff = poll;
                    poll
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "Write-back pass failed");
                    let w = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    w
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

fn retry_at(now: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    now + chrono(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let e = |code| ApiError::from_errcode(code, "m");
        assert_eq!(verdict(&e(45033), 1), Verdict::Retry { rate_limited: true });
        assert_eq!(verdict(&e(45009), 3), Verdict::Retry { rate_limited: true });
        assert_eq!(
            verdict(&e(-1), 1),
            Verdict::Retry {
                rate_limited: false
            }
        );
        assert_eq!(verdict(&e(84061), 3), Verdict::Fail);
        assert_eq!(verdict(&e(40068), 3), Verdict::Split);
        assert_eq!(verdict(&e(40068), 1), Verdict::Fail);
        let transport = ApiError::Transport {
            endpoint: "/x".into(),
            message: "m".into(),
        };
        assert_eq!(
            verdict(&transport, 2),
            Verdict::Retry {
                rate_limited: false
            }
        );
    }
}
