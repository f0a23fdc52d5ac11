//! Enrichment of channel events through WeChat's APIs: OA `user/info` (unionid, subscribe state
//! and scene, QR scene string, language, remark) and WeCom `externalcontact/get` (unionid, name,
//! avatar, gender, company, the reps following the customer with remark, add_way, state,
//! createtime, tags).
//!
//! Owns: the lookups, their short in-process answer cache and their metrics. Never holds an app
//! secret: access tokens come from the gateway's internal token endpoint through
//! [`wechat::api::KeeperTokenSource`] (held in process until shortly before they expire; a token
//! WeChat rejects is reported back so the gateway refreshes it, and the call is retried once).
//! Must not touch: the resolver, the store, the bus — callers decide what an answer changes.
//!
//! Metrics: `scrm_identity_wechat_calls_total{endpoint, outcome}` (outcome `ok`, `not_found`,
//! `transient`, `permanent`; one per call to WeChat), `scrm_identity_wechat_cache_hits_total
//! {endpoint}`, `scrm_identity_wechat_call_seconds{endpoint}`.

mod error;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wechat::api::{ApiClient, AppRef, Auth, KeeperTokenSource, WechatAccess};

pub use self::error::LookupError;
pub use wechat::api::{
    ExternalContact, ExternalContactDetail, FollowUser, FollowUserTag, OaUserInfo,
};

use crate::config::WechatConfig;

/// Most `externalcontact/get` pages read for one customer (each page carries a batch of the
/// reps following them; WeChat pages only for customers with very many reps).
const MAX_FOLLOW_PAGES: usize = 20;

/// `endpoint` label values.
const USER_INFO: &str = "user_info";
const EXTERNAL_CONTACT: &str = "external_contact";

/// Cache key: tenant, app (appid / corpid), user (openid / external_userid). The tenant is part
/// of it so one tenant never reads an answer fetched with another tenant's token.
type Key = (String, String, String);

/// The enrichment could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[error("identity.wechat: {0}")]
pub struct BuildError(String);

struct Inner {
    client: ApiClient,
    tokens: KeeperTokenSource,
    oa_users: moka::future::Cache<Key, Option<OaUserInfo>>,
    contacts: moka::future::Cache<Key, Option<ExternalContactDetail>>,
}

/// Looks users and external contacts up in WeChat. Cheap to clone (clones share the HTTP pool,
/// the held tokens and the answer cache).
#[derive(Clone)]
pub struct WechatLookup {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WechatLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatLookup")
            .field("client", &self.inner.client)
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

impl WechatLookup {
    /// The lookup `cfg` describes, or `None` when enrichment is switched off. Connects nothing
    /// (the gateway and WeChat are asked on the first lookup).
    pub fn from_config(cfg: &WechatConfig) -> Result<Option<Self>, BuildError> {
        let Some(WechatAccess { client, tokens }) =
            WechatAccess::from_config(&cfg.access).map_err(BuildError)?
        else {
            return Ok(None);
        };
        Ok(Some(WechatLookup {
            inner: Arc::new(Inner {
                client,
                tokens,
                oa_users: answer_cache(cfg),
                contacts: answer_cache(cfg),
            }),
        }))
    }

    /// `GET /cgi-bin/user/info` of `openid` under the Official Account `app_id` of `tenant_id`.
    /// `Ok(None)` when WeChat says the openid is not a user of this account (40003); a user who
    /// unfollowed is `Some` with `subscribe == 0` and little else.
    pub async fn oa_user(
        &self,
        tenant_id: &str,
        app_id: &str,
        openid: &str,
    ) -> Result<Option<OaUserInfo>, LookupError> {
        let key = (tenant_id.to_owned(), app_id.to_owned(), openid.to_owned());
        let fetch = async {
            let app = AppRef::official_account(app_id);
            let tokens = self.inner.tokens.tenant(tenant_id);
            measured(USER_INFO, async {
                self.inner
                    .client
                    .oa_user_info(Auth::delegated(&app, &tokens), openid)
                    .await
            })
            .await
        };
        cached(&self.inner.oa_users, USER_INFO, key, fetch).await
    }

    /// `GET /cgi-bin/externalcontact/get` of `external_userid` in the WeCom corp `corp_id` of
    /// `tenant_id`, with every page of `follow_user`. `Ok(None)` when WeChat says the customer
    /// is not an external contact of the corp (84061).
    pub async fn external_contact(
        &self,
        tenant_id: &str,
        corp_id: &str,
        external_userid: &str,
    ) -> Result<Option<ExternalContactDetail>, LookupError> {
        let key = (
            tenant_id.to_owned(),
            corp_id.to_owned(),
            external_userid.to_owned(),
        );
        let fetch = async {
            let app = AppRef::wecom_contact(corp_id);
            let tokens = self.inner.tokens.tenant(tenant_id);
            measured(EXTERNAL_CONTACT, async {
                let auth = Auth::delegated(&app, &tokens);
                let client = &self.inner.client;
                let mut detail = client
                    .wecom_external_contact(auth, external_userid, None)
                    .await?;
                for _ in 1..MAX_FOLLOW_PAGES {
                    let Some(cursor) = detail.next_cursor.take().filter(|c| !c.is_empty()) else {
                        break;
                    };
                    let page = client
                        .wecom_external_contact(auth, external_userid, Some(&cursor))
                        .await?;
                    detail.follow_user.extend(page.follow_user);
                    detail.next_cursor = page.next_cursor;
                }
                Ok(detail)
            })
            .await
        };
        cached(&self.inner.contacts, EXTERNAL_CONTACT, key, fetch).await
    }
}

/// The corp tags (`type` 1, with an id) among a rep's tags on a customer, sorted, each once.
fn corp_tag_ids(tags: &[FollowUserTag]) -> Vec<String> {
    let ids: std::collections::BTreeSet<&str> = tags
        .iter()
        .filter(|t| t.tag_type == 1)
        .filter_map(|t| t.tag_id.as_deref())
        .filter(|id| !id.is_empty())
        .collect();
    ids.into_iter().map(str::to_owned).collect()
}

fn answer_cache<V: Clone + Send + Sync + 'static>(
    cfg: &WechatConfig,
) -> moka::future::Cache<Key, Option<V>> {
    moka::future::Cache::builder()
        .max_capacity(cfg.cache_max_entries)
        .time_to_live(Duration::from_secs(cfg.cache_ttl_secs))
        .build()
}

/// Runs one WeChat lookup: times and counts it, turns "no such user" into `None` and every other
/// failure into a classified [`LookupError`].
async fn measured<T>(
    endpoint: &'static str,
    call: impl std::future::Future<Output = Result<T, wechat::api::ApiError>>,
) -> Result<Option<T>, LookupError> {
    let started = Instant::now();
    let result = match call.await {
        Ok(v) => Ok(Some(v)),
        Err(e) if error::is_not_found(&e) => Ok(None),
        Err(e) => Err(LookupError::from(e)),
    };
    let outcome = match &result {
        Ok(Some(_)) => "ok",
        Ok(None) => "not_found",
        Err(e) => e.outcome(),
    };
    metrics::histogram!(crate::metrics::WECHAT_CALL_SECONDS, "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(crate::metrics::WECHAT_CALLS, "endpoint" => endpoint, "outcome" => outcome)
        .increment(1);
    if let Err(e) = &result {
        tracing::warn!(endpoint, transient = e.is_transient(), error = %e, "WeChat lookup failed");
    }
    result
}

/// The cached answer under `key`, or `fetch`'s (concurrent callers for one key share a single
/// fetch). Answers, including "no such user", are cached; errors are not.
async fn cached<V: Clone + Send + Sync + 'static>(
    cache: &moka::future::Cache<Key, Option<V>>,
    endpoint: &'static str,
    key: Key,
    fetch: impl std::future::Future<Output = Result<Option<V>, LookupError>>,
) -> Result<Option<V>, LookupError> {
    let entry = cache
        .entry(key)
        .or_try_insert_with(fetch)
        .await
        .map_err(|e| (*e).clone())?;
    if !entry.is_fresh() {
        metrics::counter!(crate::metrics::WECHAT_CACHE_HITS, "endpoint" => endpoint).increment(1);
    }
    Ok(entry.into_value())
}

/// What WeChat's APIs add to `env`: OA `user/info` on subscribe / scan, WeCom
/// `externalcontact/get` on add / edit external contact; `Ok(None)` for other events and for
/// users WeChat does not know.
impl WechatLookup {
    pub async fn for_event(
        &self,
        env: &proto::Envelope,
    ) -> Result<Option<crate::domain::observe::Enriched>, LookupError> {
        use crate::domain::observe::{self, Enriched, FollowChange};
        use proto::channel::{EventBody, ExternalContactChangeType as T};
        let Ok(cb) = env.payload_as::<proto::callback::CallbackReceived>() else {
            return Ok(None);
        };
        let tenant = &env.tenant_id;
        match &cb.event.body {
            EventBody::Subscribe { .. } | EventBody::Scan { .. } => {
                let openid = &cb.event.from_user_name;
                let Some(u) = self.oa_user(tenant, &cb.app_id, openid).await? else {
                    return Ok(None);
                };
                Ok(Some(observe::enriched_oa(
                    u.unionid.as_deref(),
                    u.language.as_deref(),
                )))
            }
            EventBody::ExternalContact(c)
                if matches!(
                    c.change_type,
                    T::AddExternalContact | T::AddHalfExternalContact | T::EditExternalContact
                ) =>
            {
                if c.change_type == T::EditExternalContact {
                    // The edit is news about the contact (remark, tags): a cached answer from
                    // before it would hide it.
                    self.inner
                        .contacts
                        .invalidate(&(
                            tenant.to_owned(),
                            cb.app_id.clone(),
                            c.external_user_id.clone(),
                        ))
                        .await;
                }
                let Some(d) = self
                    .external_contact(tenant, &cb.app_id, &c.external_user_id)
                    .await?
                else {
                    return Ok(None);
                };
                let x = &d.external_contact;
                let corp = x.corp_full_name.as_deref().or(x.corp_name.as_deref());
                let follow = d
                    .follow_user
                    .iter()
                    .find(|f| f.userid == c.user_id)
                    .map(|f| FollowChange::Details {
                        remark: Some(f.remark.clone()).filter(|r| !r.is_empty()),
                        add_way: Some(i64::from(f.add_way)),
                        state: f.state.clone().filter(|s| !s.is_empty()),
                        since: observe::unix(f.createtime),
                        corp_tags: Some(corp_tag_ids(&f.tags)),
                    });
                Ok(Some(Enriched {
                    unionid: x.unionid.clone().filter(|u| !u.is_empty()),
                    fields: observe::wecom_contact_fields(
                        &x.name,
                        x.avatar.as_deref(),
                        x.gender,
                        corp,
                        x.position.as_deref(),
                    ),
                    follow,
                    source: "wecom.external_contact".into(),
                }))
            }
            _ => Ok(None),
        }
    }
}
