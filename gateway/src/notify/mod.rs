//! Lead notifications delivered: the consumer of `lead.notify` (group `notify`,
//! `proto::routing::NOTIFY`) that sends the owning rep a WeCom app message (a `textcard` from
//! the corp's agent app, `wecom_agent` in the registry) leading to the customer in the sidebar.
//! The gateway runs it because it holds the agent apps' secrets and the token keeper.
//!
//! For each message: settled before (the inbox) → acknowledged; no owner or no agent app for the
//! owner's corp (registered to the message's tenant) → recorded as skipped, not retried;
//! otherwise the notification is claimed ([`store::claim`]: one sender at a time across every
//! replica, so a redelivery or a copy from a second scoring instance never sends twice while the
//! first is in flight), paced by the corp's call rate ([`RateLimiter`], shared through the
//! cache), and sent. Busy, rate-limited or unreachable WeCom → the try is recorded and the
//! message goes back to the bus, which brings it again after `gateway.notify.retry_delays_ms`
//! (the group's own retry policy; default the bus's) until `max_attempts`, then it is recorded
//! as failed; an answer no retry changes (81013 no valid recipient, 60020 IP not allowed, a
//! wrong AgentID…) is recorded as failed at once. Every try is in `lead_notifications`, which a rep's inbox pages
//! through ([`store::inbox`]).
//!
//! A process killed between WeCom's answer and the settling write leaves the notification
//! claimed; after its lease another consumer sends it again — the only way a rep gets one twice
//! (WeCom's own duplicate check of `message/send`, `enable_duplicate_check`, is not asked for
//! by the API client).
//!
//! Metrics: `scrm_gateway_notify_sent_total`, `scrm_gateway_notify_failed_total{reason}`,
//! `scrm_gateway_notify_skipped_total{reason}`, `scrm_gateway_notify_retries_total`,
//! `scrm_gateway_notify_duplicates_total`.

pub mod domain;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use platform::bus::{consume, Attempt, Bus, GroupSpec, HandlerError};
use platform::cache::{Cache, RateLimiter};
use platform::db::inbox::Processed;
use platform::http::Principal;
use proto::scoring::LeadNotify;
use proto::Envelope;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use wechat::api::{AppMessage, AppMessageBody};

use crate::access::Access;
use crate::config::NotifyConfig;
use crate::registry::{App, AppKind, AppRegistry};
use crate::services::{Service, Services};
use crate::wechat_api::WechatApi;

use self::domain::{Card, Decision, SkipReason, Verdict};
use self::store::{Claim, Claimed, NewNotification, SettleError, Settlement, Status};

/// Notifications sent (WeCom accepted the message for the rep).
pub const SENT: &str = "scrm_gateway_notify_sent_total";
/// Notifications failed for good, by reason.
pub const FAILED: &str = "scrm_gateway_notify_failed_total";
/// Notifications recorded without a message, by reason.
pub const SKIPPED: &str = "scrm_gateway_notify_skipped_total";
/// Tries that failed and went back to the bus for another.
pub const RETRIES: &str = "scrm_gateway_notify_retries_total";
/// Copies of messages settled or in flight elsewhere.
pub const DUPLICATES: &str = "scrm_gateway_notify_duplicates_total";

/// Describes the metrics (once, from [`crate::metrics::describe`] at the gateway's start).
pub fn describe_metrics() {
    metrics::describe_counter!(
        SENT,
        "Lead notifications WeCom accepted for the owning rep (message/send)"
    );
    metrics::describe_counter!(
        FAILED,
        "Lead notifications never sent, by reason (wechat_refused, unreached, retries_exhausted)"
    );
    metrics::describe_counter!(
        SKIPPED,
        "Lead notifications recorded without a message, by reason (no_owner, no_agent_app)"
    );
    metrics::describe_counter!(
        RETRIES,
        "Tries of a lead notification that failed and were put back for a later retry"
    );
    metrics::describe_counter!(
        DUPLICATES,
        "Deliveries of a lead notification already settled or being sent by another consumer"
    );
}

/// How far ahead a notification may book its corp's call slot before it goes back to the bus.
const PACE_HORIZON: Duration = Duration::from_secs(30);
/// How long a claim holds: the pace horizon, the call (its token fetch and request, 10 s each)
/// and a margin. A holder that died is taken over after it.
const LEASE_SECS: i64 = 90;
/// Tries of the settling write after WeCom answered (the message is out: losing the record
/// would send it again once the lease runs out).
const SETTLE_TRIES: u32 = 5;

/// The consumer's dependencies. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    db: DatabaseConnection,
    registry: AppRegistry,
    wechat: WechatApi,
    access: Access,
    services: Services,
    limiter: RateLimiter,
    cfg: NotifyConfig,
    /// Where the sidebar's links start.
    public_base: String,
}

/// The agent app a card goes out from.
#[derive(Clone, Copy)]
struct Sender<'a> {
    agent_id: i64,
    agent: &'a App,
    card: &'a Card,
}

/// The dependencies of a [`Notifier`].
pub struct NotifierDeps {
    pub db: DatabaseConnection,
    pub registry: AppRegistry,
    pub wechat: WechatApi,
    pub access: Access,
    pub services: Services,
    pub cache: Arc<dyn Cache>,
    pub public_base: String,
}

fn count(name: &'static str, reason: Option<&'static str>) {
    match reason {
        Some(r) => metrics::counter!(name, "reason" => r).increment(1),
        None => metrics::counter!(name).increment(1),
    }
}

impl Notifier {
    pub fn new(deps: NotifierDeps, cfg: &NotifyConfig) -> Self {
        Notifier {
            limiter: RateLimiter::new(
                deps.cache,
                "wecom_notify",
                cfg.rate_per_minute,
                cfg.rate_burst,
            ),
            db: deps.db,
            registry: deps.registry,
            wechat: deps.wechat,
            access: deps.access,
            services: deps.services,
            cfg: cfg.clone(),
            public_base: deps.public_base,
        }
    }

    /// Handles one `lead.notify`: see the module documentation.
    pub async fn handle(&self, env: Envelope, attempt: Attempt) -> Result<(), HandlerError> {
        let n: LeadNotify = env
            .decode()
            .map_err(|e| HandlerError::Invalid(e.to_string()))?;
        if store::settled(&self.db, env.id).await.map_err(transient)? {
            count(DUPLICATES, None);
            return Ok(());
        }
        let (decision, agent, card) = self.load(&env, &n).await?;
        let Some(claimed) = self.claim(&env, &n, &card, attempt).await? else {
            return Ok(());
        };
        match (decision, agent) {
            (Decision::Send { agent_id }, Some(agent)) => {
                let sender = Sender {
                    agent_id,
                    agent: &agent,
                    card: &card,
                };
                self.send(env.id, &n, &claimed, sender, attempt).await
            }
            (Decision::Skip(reason), _) => self.skip(env.id, &claimed, reason).await,
            // `decide` sends only with an agent app.
            (Decision::Send { .. }, None) => {
                self.skip(env.id, &claimed, SkipReason::NoAgentApp).await
            }
        }
    }

    /// What the decision needs, and the decision: the owner's agent app (registered to the
    /// message's tenant, with its secret), the tenant's time zone, the customer's name.
    async fn load(
        &self,
        env: &Envelope,
        n: &LeadNotify,
    ) -> Result<(Decision, Option<Arc<App>>, Card), HandlerError> {
        let agent = match &n.owner {
            Some(o) => self
                .registry
                .get(AppKind::WecomAgent, &o.corp_id)
                .await
                .map_err(transient)?
                // Another tenant's app never sends for this one.
                .filter(|a| a.tenant_id == env.tenant_id && a.secret.is_some()),
            None => None,
        };
        let decision = domain::decide(n, agent.as_ref().and_then(|a| a.agent_id));
        let tz = self.time_zone(&env.tenant_id).await;
        let name = match decision {
            Decision::Send { .. } => self.customer_name(&env.tenant_id, n).await,
            Decision::Skip(_) => None,
        };
        let card = domain::card(n, name.as_deref(), tz, &self.public_base);
        Ok((decision, agent, card))
    }

    /// This consumer's claim on the notification, or `None` when it is settled or another
    /// consumer holds it (this copy then looks again later, and lets go on its last delivery:
    /// the holder's own delivery is redelivered should the holder die).
    async fn claim(
        &self,
        env: &Envelope,
        n: &LeadNotify,
        card: &Card,
        attempt: Attempt,
    ) -> Result<Option<Claimed>, HandlerError> {
        let owner = n.owner.as_ref();
        let row = NewNotification {
            id: env.id,
            tenant_id: env.tenant_id.clone(),
            corp_id: owner.map(|o| o.corp_id.clone()),
            user_id: owner.map(|o| o.user_id.clone()),
            external_userid: owner.and_then(|o| o.external_userid.clone()),
            profile_id: n.profile_id.clone(),
            trigger_id: n.trigger_id.clone(),
            title: card.title.clone(),
            description: card.description.clone(),
            url: card.url.clone(),
        };
        let lease = chrono::Duration::seconds(LEASE_SECS);
        match store::claim(&self.db, &row, Utc::now(), lease)
            .await
            .map_err(transient)?
        {
            Claim::Claimed(c) => Ok(Some(c)),
            Claim::Settled(_) => {
                count(DUPLICATES, None);
                Ok(None)
            }
            Claim::InFlight if attempt.last => {
                count(DUPLICATES, None);
                Ok(None)
            }
            Claim::InFlight => Err(HandlerError::Transient(format!(
                "notification {} is being sent by another consumer",
                env.id
            ))),
        }
    }

    /// Records the notification without a message.
    async fn skip(
        &self,
        id: uuid::Uuid,
        claimed: &Claimed,
        reason: SkipReason,
    ) -> Result<(), HandlerError> {
        let s = Settlement {
            status: Status::Skipped,
            reason: Some(reason.as_str().into()),
            attempts: claimed.attempts.clone(),
            msgid: None,
        };
        self.settle(id, claimed, &s).await?;
        count(SKIPPED, Some(reason.as_str()));
        tracing::info!(notification = %id, reason = reason.as_str(), "Lead notification recorded without a message");
        Ok(())
    }

    /// One try: the corp's call slot, `message/send`, and what the answer means written down
    /// (settled, or handed back for the bus to bring again).
    async fn send(
        &self,
        id: uuid::Uuid,
        n: &LeadNotify,
        claimed: &Claimed,
        sender: Sender<'_>,
        attempt: Attempt,
    ) -> Result<(), HandlerError> {
        let (corp, rep) = n
            .owner
            .as_ref()
            .map(|o| (o.corp_id.as_str(), o.user_id.as_str()))
            .unwrap_or_default();
        let card = sender.card;
        let result = match (self.pace(corp).await, WechatApi::credentials(sender.agent)) {
            (true, Some(creds)) => {
                let message = AppMessage::new(
                    sender.agent_id,
                    &[rep],
                    AppMessageBody::textcard(
                        &card.title,
                        &card.description,
                        &card.url,
                        Some(domain::BUTTON),
                    ),
                );
                Some(self.wechat.send_app_message(&creds, &message).await)
            }
            // No call slot soon enough (an agent app always has its secret: `load` made sure).
            _ => None,
        };
        let tries = claimed.attempts.len() as u32 + 1;
        let last = attempt.last || self.cfg.max_attempts.is_some_and(|m| tries >= m);
        let (verdict, record) = domain::judge(result.as_ref(), rep, last, Utc::now());
        let mut attempts = claimed.attempts.clone();
        attempts.push(record.clone());
        let error = record.errmsg.as_deref().unwrap_or("");
        match verdict {
            Verdict::Retry => {
                store::release(&self.db, id, claimed, &attempts, Utc::now())
                    .await
                    .map_err(|e| match e {
                        SettleError::Db(e) => transient(e),
                        lost => HandlerError::Transient(lost.to_string()),
                    })?;
                count(RETRIES, None);
                tracing::warn!(
                    notification = %id, corp_id = %corp, errcode = ?record.errcode, error, tries,
                    "Lead notification not sent; will retry"
                );
                Err(HandlerError::Transient(format!("message/send: {error}")))
            }
            Verdict::Sent { msgid } => {
                let s = Settlement {
                    status: Status::Sent,
                    reason: None,
                    attempts,
                    msgid: Some(msgid).filter(|m| !m.is_empty()),
                };
                self.settle(id, claimed, &s).await?;
                count(SENT, None);
                tracing::info!(notification = %id, corp_id = %corp, tries, "Lead notification sent");
                Ok(())
            }
            Verdict::Failed { reason } => {
                let s = Settlement {
                    status: Status::Failed,
                    reason: Some(reason.into()),
                    attempts,
                    msgid: record.msgid.clone(),
                };
                self.settle(id, claimed, &s).await?;
                count(FAILED, Some(reason));
                tracing::warn!(
                    notification = %id, corp_id = %corp, reason, errcode = ?record.errcode, error,
                    tries, "Lead notification failed"
                );
                Ok(())
            }
        }
    }

    /// Writes the final status, trying again a few times on a database failure; a claim taken
    /// over meanwhile leaves the notification to its new holder.
    async fn settle(
        &self,
        id: uuid::Uuid,
        claimed: &Claimed,
        s: &Settlement,
    ) -> Result<(), HandlerError> {
        let mut run = 0;
        loop {
            run += 1;
            match store::settle(&self.db, id, claimed, s, Utc::now()).await {
                Ok(Processed::Done(())) => return Ok(()),
                Ok(Processed::Duplicate) => {
                    count(DUPLICATES, None);
                    return Ok(());
                }
                Err(SettleError::ClaimLost(_)) => {
                    tracing::warn!(notification = %id, "Lead notification taken over by another consumer before it was settled");
                    return Ok(());
                }
                Err(SettleError::Db(e)) if run < SETTLE_TRIES => {
                    tracing::warn!(notification = %id, error = %e, "Cannot record the lead notification yet");
                    platform::db::contention_pause(run * 10).await;
                }
                Err(SettleError::Db(e)) => return Err(transient(e)),
            }
        }
    }

    /// Waits for the corp's next call slot; `false` when none is free within the horizon. A
    /// cache that cannot be reached does not hold notifications up (WeCom's own limit answers
    /// 45033 / 45009, which are retried).
    async fn pace(&self, corp_id: &str) -> bool {
        match self.limiter.reserve(corp_id, PACE_HORIZON).await {
            Ok(Some(wait)) => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "Rate limit unavailable; sending unpaced");
                true
            }
        }
    }

    /// The tenant's time zone (Asia/Shanghai when unknown).
    async fn time_zone(&self, tenant_id: &str) -> chrono_tz::Tz {
        self.access
            .tenant(tenant_id)
            .await
            .ok()
            .flatten()
            .and_then(|t| t.time_zone.parse().ok())
            .unwrap_or(chrono_tz::Asia::Shanghai)
    }

    /// The customer's name as identity-svc knows it, within `name_lookup_ms`; `None` when it
    /// does not answer in time (the card names the customer by id).
    async fn customer_name(&self, tenant_id: &str, n: &LeadNotify) -> Option<String> {
        let owner = n.owner.as_ref()?;
        if self.cfg.name_lookup_ms == 0 || !valid_id(&n.profile_id) {
            return None;
        }
        let principal = Principal::new(tenant_id, "system:notify", proto::auth::Role::Analyst);
        let asked = self
            .services
            .get_json_as(
                Service::Identity,
                &format!("/v1/profiles/{}", n.profile_id),
                &principal,
                Duration::from_millis(self.cfg.name_lookup_ms),
            )
            .await;
        match asked {
            Ok((status, body)) if status.is_success() => {
                domain::customer_name(&body, &owner.corp_id, &owner.user_id)
            }
            Ok((status, _)) => {
                tracing::debug!(
                    status = status.as_u16(),
                    "No customer name for the notification"
                );
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "No customer name for the notification");
                None
            }
        }
    }
}

/// A profile id safe in a path (identity's are UUIDs).
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn transient(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Transient(e.to_string())
}

/// The group's spec: the bus's policy, with `cfg`'s retries where set.
pub fn group_spec(bus: &dyn Bus, cfg: &NotifyConfig) -> GroupSpec {
    platform::bus::group_spec(bus, proto::routing::NOTIFY, cfg.concurrency)
        .with_retries(cfg.max_attempts, cfg.retry_delays_ms.as_deref())
}

/// Subscribes (retrying while the broker is unreachable) and notifies until `shutdown`.
pub async fn run(
    bus: Arc<dyn Bus>,
    notifier: Notifier,
    cfg: NotifyConfig,
    shutdown: CancellationToken,
) {
    let spec = group_spec(&*bus, &cfg);
    consume(
        "notify",
        bus,
        spec,
        cfg.concurrency,
        shutdown,
        move |env, attempt| {
            let notifier = notifier.clone();
            async move { notifier.handle(env, attempt).await }
        },
    )
    .await;
}
