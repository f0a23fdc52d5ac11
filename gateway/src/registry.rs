//! The app registry: tenants' OA / mini-program apps, WeCom corps (the customer-contact secret)
//! and WeCom self-built apps (the agent that sends reps app messages) with their callback token,
//! EncodingAESKey and secret. Stored in the gateway's database with every secret sealed under the
//! gateway key; read through a short in-process cache (callbacks look an app up on every request).
//!
//! An app is keyed by its kind and `app_id`: the appid of an Official Account or mini-program,
//! the corpid of a WeCom corp — for both WeCom kinds, so a corp has one customer-contact secret
//! and one agent app, found by the corpid a WeCom event or a rep names. The agent app's AgentID
//! is a field of its own (`agent_id`): WeCom's `message/send` names the app by it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use platform::config::Secret;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wechat::crypto::MsgCrypto;

use crate::config::{AppSeed, WriteKeySeed};
use crate::domain::keys::{KeyError, Keys};
use crate::store::{apps, write_keys};

/// Which WeChat product an app is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    /// Official Account (公众号).
    Oa,
    /// Mini-program (小程序).
    Mp,
    /// WeCom corp (企业微信): callbacks and the customer-contact secret.
    Wecom,
    /// A WeCom self-built app (自建应用) of a corp, by its corpid, with its AgentID and secret:
    /// sends reps app messages. It takes no callbacks here.
    WecomAgent,
}

impl AppKind {
    pub const ALL: [AppKind; 4] = [
        AppKind::Oa,
        AppKind::Mp,
        AppKind::Wecom,
        AppKind::WecomAgent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppKind::Oa => "oa",
            AppKind::Mp => "mp",
            AppKind::Wecom => "wecom",
            AppKind::WecomAgent => "wecom_agent",
        }
    }

    /// The kind named `name` (as [`Self::as_str`] gives it).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// WeChat sends this kind's callbacks to `/wechat/<kind>/<app_id>` (a callback token is
    /// registered with it); an agent app has none here.
    pub fn takes_callbacks(self) -> bool {
        self != AppKind::WecomAgent
    }
}

/// A registered app, unsealed.
pub struct App {
    pub tenant_id: String,
    pub kind: AppKind,
    pub app_id: String,
    pub name: String,
    /// The AgentID of a WeCom agent app (`None` for the other kinds).
    pub agent_id: Option<i64>,
    /// Callback token (signatures); empty for an agent app.
    pub token: Secret,
    /// Message crypto, when an EncodingAESKey is registered.
    pub crypto: Option<MsgCrypto>,
    /// API secret, when registered.
    pub secret: Option<Secret>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("tenant_id", &self.tenant_id)
            .field("kind", &self.kind)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// Why the registry could not answer.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("app registry database: {0}")]
    Db(#[from] DbErr),
    #[error("app {0} cannot be unsealed: {1}")]
    Unseal(String, KeyError),
    #[error("app {0} has an invalid EncodingAESKey: {1}")]
    BadAesKey(String, wechat::crypto::CryptoError),
    /// Concurrent registrations of the app won every attempt: a conflict to try again, not a
    /// database failure.
    #[error("app {0} kept changing while it was registered")]
    KeptChanging(String),
}

/// Lookup of apps and write keys.
#[derive(Clone)]
pub struct AppRegistry {
    db: DatabaseConnection,
    keys: Keys,
    apps: moka::future::Cache<(AppKind, String), Option<Arc<App>>>,
    write_keys: moka::future::Cache<String, Option<String>>,
}

fn context(kind: AppKind, app_id: &str, field: &str) -> String {
    format!("{}:{app_id}:{field}", kind.as_str())
}

fn hash_key(key: &str) -> String {
    hex_lower(&Sha256::digest(key.as_bytes()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl AppRegistry {
    pub fn new(db: DatabaseConnection, keys: Keys) -> Self {
        AppRegistry {
            db,
            keys,
            apps: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            write_keys: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
        }
    }

    /// Registers or updates an app (secrets sealed).
    pub async fn upsert(&self, seed: &AppSeed) -> Result<(), RegistryError> {
        let now = Utc::now();
        let seal = |v: &Secret, f: &str| {
            self.keys
                .seal(v.expose(), &context(seed.kind, &seed.app_id, f))
        };
        let mut row = apps::ActiveModel {
            id: ActiveValue::NotSet,
            tenant_id: ActiveValue::Set(seed.tenant_id.clone()),
            kind: ActiveValue::Set(seed.kind.as_str().to_string()),
            app_id: ActiveValue::Set(seed.app_id.clone()),
            name: ActiveValue::Set(seed.name.clone().unwrap_or_else(|| seed.app_id.clone())),
            agent_id: ActiveValue::Set(seed.agent_id),
            // Empty for an app without callbacks (an agent app).
            token_sealed: ActiveValue::Set(
                seed.token
                    .as_ref()
                    .map(|t| seal(t, "token"))
                    .unwrap_or_default(),
            ),
            aes_key_sealed: ActiveValue::Set(
                seed.encoding_aes_key.as_ref().map(|k| seal(k, "aes_key")),
            ),
            secret_sealed: ActiveValue::Set(seed.secret.as_ref().map(|s| seal(s, "secret"))),
            created_at: ActiveValue::Set(now),
            updated_at: ActiveValue::Set(now),
        };
        // Update-or-insert rather than INSERT … ON CONFLICT: SQLite refused the upsert's conflict
        // target right after a fresh migration in some runs. The unique index still guards
        // against two concurrent inserts (the loser retries as an update).
        for _ in 0..3 {
            let existing = apps::Entity::find()
                .filter(apps::Column::Kind.eq(seed.kind.as_str()))
                .filter(apps::Column::AppId.eq(&seed.app_id))
                .one(&self.db)
                .await?;
            let result = match existing {
                Some(e) => {
                    row.id = ActiveValue::Unchanged(e.id);
                    row.created_at = ActiveValue::NotSet;
                    apps::Entity::update(row.clone())
                        .exec(&self.db)
                        .await
                        .map(drop)
                }
                None => apps::Entity::insert(row.clone())
                    .exec(&self.db)
                    .await
                    .map(drop),
            };
            match result {
                Ok(()) => {
                    self.apps
                        .invalidate(&(seed.kind, seed.app_id.clone()))
                        .await;
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.sql_err(),
                        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::KeptChanging(seed.app_id.clone()))
    }

    /// The app registered as `kind` / `app_id`, if any.
    pub async fn get(
        &self,
        kind: AppKind,
        app_id: &str,
    ) -> Result<Option<Arc<App>>, RegistryError> {
        let cache_key = (kind, app_id.to_string());
        if let Some(hit) = self.apps.get(&cache_key).await {
            return Ok(hit);
        }
        let row = apps::Entity::find()
            .filter(apps::Column::Kind.eq(kind.as_str()))
            .filter(apps::Column::AppId.eq(app_id))
            .one(&self.db)
            .await?;
        let app = match row {
            None => None,
            Some(r) => Some(Arc::new(self.unseal(kind, r)?)),
        };
        self.apps.insert(cache_key, app.clone()).await;
        Ok(app)
    }

    fn unseal(&self, kind: AppKind, r: apps::Model) -> Result<App, RegistryError> {
        let open = |sealed: &str, f: &str| {
            self.keys
                .open(sealed, &context(kind, &r.app_id, f))
                .map_err(|e| RegistryError::Unseal(r.app_id.clone(), e))
        };
        let token = if r.token_sealed.is_empty() {
            String::new()
        } else {
            open(&r.token_sealed, "token")?
        };
        let crypto = match &r.aes_key_sealed {
            Some(sealed) => {
                let aes = open(sealed, "aes_key")?;
                Some(
                    MsgCrypto::new(token.clone(), &aes, r.app_id.clone())
                        .map_err(|e| RegistryError::BadAesKey(r.app_id.clone(), e))?,
                )
            }
            None => None,
        };
        let secret = match &r.secret_sealed {
            Some(s) => Some(Secret::new(open(s, "secret")?)),
            None => None,
        };
        Ok(App {
            tenant_id: r.tenant_id,
            kind,
            app_id: r.app_id,
            name: r.name,
            agent_id: r.agent_id,
            token: Secret::new(token),
            crypto,
            secret,
        })
    }

    /// The apps registered to `tenant` (no secret is ever in an [`AppSummary`]).
    pub async fn list(&self, tenant: &str) -> Result<Vec<AppSummary>, RegistryError> {
        Ok(apps::Entity::find()
            .filter(apps::Column::TenantId.eq(tenant))
            .all(&self.db)
            .await?
            .into_iter()
            .map(AppSummary::from)
            .collect())
    }

    /// The app `kind`/`app_id` of `tenant` (`None` also when another tenant registered it).
    pub async fn summary(
        &self,
        tenant: &str,
        kind: AppKind,
        app_id: &str,
    ) -> Result<Option<AppSummary>, RegistryError> {
        Ok(apps::Entity::find()
            .filter(apps::Column::Kind.eq(kind.as_str()))
            .filter(apps::Column::AppId.eq(app_id))
            .filter(apps::Column::TenantId.eq(tenant))
            .one(&self.db)
            .await?
            .map(AppSummary::from))
    }

    /// The tenant that registered `kind`/`app_id`, if any.
    pub async fn owner_of(
        &self,
        kind: AppKind,
        app_id: &str,
    ) -> Result<Option<String>, RegistryError> {
        Ok(apps::Entity::find()
            .filter(apps::Column::Kind.eq(kind.as_str()))
            .filter(apps::Column::AppId.eq(app_id))
            .one(&self.db)
            .await?
            .map(|a| a.tenant_id))
    }

    /// Removes `tenant`'s app; `false` when it has no such app. Callbacks for it are refused
    /// from then on (404 unknown app).
    pub async fn remove(
        &self,
        tenant: &str,
        kind: AppKind,
        app_id: &str,
    ) -> Result<bool, RegistryError> {
        let r = apps::Entity::delete_many()
            .filter(apps::Column::Kind.eq(kind.as_str()))
            .filter(apps::Column::AppId.eq(app_id))
            .filter(apps::Column::TenantId.eq(tenant))
            .exec(&self.db)
            .await?;
        self.apps.invalidate(&(kind, app_id.to_string())).await;
        Ok(r.rows_affected > 0)
    }

    /// The write keys of `tenant`: (id = the first 16 hex digits of the key's hash, name,
    /// created at).
    pub async fn write_keys(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, String, chrono::DateTime<Utc>)>, RegistryError> {
        Ok(write_keys::Entity::find()
            .filter(write_keys::Column::TenantId.eq(tenant))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|k| (k.key_hash[..16].to_string(), k.name, k.created_at))
            .collect())
    }

    /// Removes `tenant`'s write key whose id (see [`Self::write_keys`]) is `id`.
    pub async fn remove_write_key(&self, tenant: &str, id: &str) -> Result<bool, RegistryError> {
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(false);
        }
        let r = write_keys::Entity::delete_many()
            .filter(write_keys::Column::TenantId.eq(tenant))
            .filter(write_keys::Column::KeyHash.starts_with(id.to_lowercase()))
            .exec(&self.db)
            .await?;
        self.write_keys.invalidate_all();
        Ok(r.rows_affected > 0)
    }

    /// Registers a tenant write key (only its hash is stored).
    pub async fn add_write_key(&self, seed: &WriteKeySeed) -> Result<(), RegistryError> {
        let row = write_keys::ActiveModel {
            key_hash: ActiveValue::Set(hash_key(seed.key.expose())),
            tenant_id: ActiveValue::Set(seed.tenant_id.clone()),
            name: ActiveValue::Set(seed.name.clone()),
            created_at: ActiveValue::Set(Utc::now()),
        };
        write_keys::Entity::insert(row)
            .on_conflict(
                OnConflict::column(write_keys::Column::KeyHash)
                    .update_columns([write_keys::Column::TenantId, write_keys::Column::Name])
                    .to_owned(),
            )
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The tenant a write key belongs to.
    pub async fn tenant_of_write_key(&self, key: &str) -> Result<Option<String>, RegistryError> {
        let hash = hash_key(key);
        if let Some(hit) = self.write_keys.get(&hash).await {
            return Ok(hit);
        }
        let tenant = write_keys::Entity::find_by_id(hash.clone())
            .one(&self.db)
            .await?
            .map(|r| r.tenant_id);
        self.write_keys.insert(hash, tenant.clone()).await;
        Ok(tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::config::DbConfig;

    fn seed(token: &str) -> AppSeed {
        AppSeed {
            tenant_id: "t1".into(),
            kind: AppKind::Oa,
            app_id: "wx2c2769f8efd9abc2".into(),
            name: None,
            agent_id: None,
            token: Some(Secret::new(token)),
            encoding_aes_key: Some(Secret::new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")),
            secret: Some(Secret::new("s3cret")),
        }
    }

    #[tokio::test]
    async fn upsert_then_get_unseals() {
        let path = std::env::temp_dir().join(format!("reg-{}.db", uuid::Uuid::new_v4()));
        let cfg = DbConfig::new(format!("sqlite://{}", path.display()));
        platform::role::migrate::<crate::store::Migrator>("gateway", &cfg)
            .await
            .unwrap();
        let db = platform::db::connect(&cfg, false).await.unwrap();
        let reg = AppRegistry::new(
            db.clone(),
            Keys::from_base64(&Keys::generate_base64()).unwrap(),
        );
        reg.upsert(&seed("spamtest")).await.unwrap();
        reg.upsert(&seed("spamtest2")).await.unwrap();
        let app = reg
            .get(AppKind::Oa, "wx2c2769f8efd9abc2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(app.token.expose(), "spamtest2");
        assert_eq!(app.secret.as_ref().unwrap().expose(), "s3cret");
        assert!(app.crypto.is_some());
        assert!(reg
            .get(AppKind::Mp, "wx2c2769f8efd9abc2")
            .await
            .unwrap()
            .is_none());
        let raw: Vec<apps::Model> = apps::Entity::find().all(&db).await.unwrap();
        assert_eq!(raw.len(), 1);
        assert!(
            !raw[0].secret_sealed.as_deref().unwrap().contains("s3cret"),
            "sealed at rest"
        );
        // A corp's agent app: beside its customer-contact entry, no callback token.
        let corp = "ww2c2769f8efd9abc2";
        let mut contact = seed("wecomtoken");
        (contact.kind, contact.app_id) = (AppKind::Wecom, corp.into());
        reg.upsert(&contact).await.unwrap();
        let agent = AppSeed {
            kind: AppKind::WecomAgent,
            app_id: corp.into(),
            agent_id: Some(1_000_002),
            token: None,
            encoding_aes_key: None,
            secret: Some(Secret::new("agent-secret")),
            ..seed("unused")
        };
        reg.upsert(&agent).await.unwrap();
        let a = reg.get(AppKind::WecomAgent, corp).await.unwrap().unwrap();
        assert_eq!(
            (a.agent_id, a.token.expose(), a.crypto.is_none()),
            (Some(1_000_002), "", true)
        );
        assert_eq!(a.secret.as_ref().unwrap().expose(), "agent-secret");
        let label = crate::wechat_api::WechatApi::app_ref(&a).label();
        assert_eq!(label, format!("wecom:{corp}:1000002"));
        let c = reg.get(AppKind::Wecom, corp).await.unwrap().unwrap();
        assert_eq!((c.agent_id, c.token.expose()), (None, "wecomtoken"));
        let s = reg
            .summary("t1", AppKind::WecomAgent, corp)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.token_set, s.secret_set, s.agent_id),
            (false, true, Some(1_000_002))
        );
        db.close().await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}

/// A registered app as the admin API shows it: which secrets are set, never their values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AppSummary {
    pub kind: AppKind,
    /// The appid (OA, mini-program) or the corpid (both WeCom kinds).
    pub app_id: String,
    pub name: String,
    /// The AgentID of a WeCom agent app; null for the other kinds.
    pub agent_id: Option<i64>,
    pub token_set: bool,
    pub encoding_aes_key_set: bool,
    pub secret_set: bool,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
}

impl From<apps::Model> for AppSummary {
    fn from(a: apps::Model) -> Self {
        AppSummary {
            kind: AppKind::parse(&a.kind).unwrap_or(AppKind::Oa),
            app_id: a.app_id,
            name: a.name,
            agent_id: a.agent_id,
            token_set: !a.token_sealed.is_empty(),
            encoding_aes_key_set: a.aes_key_sealed.is_some(),
            secret_set: a.secret_sealed.is_some(),
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}
