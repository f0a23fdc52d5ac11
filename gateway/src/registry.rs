//! The app registry: tenants' OA / mini-program apps and WeCom corps with their callback token,
//! EncodingAESKey and secret. Stored in the gateway's database with every secret sealed under the
//! gateway key; read through a short in-process cache (callbacks look an app up on every request).

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    /// Official Account (公众号).
    Oa,
    /// Mini-program (小程序).
    Mp,
    /// WeCom corp (企业微信).
    Wecom,
}

impl AppKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AppKind::Oa => "oa",
            AppKind::Mp => "mp",
            AppKind::Wecom => "wecom",
        }
    }
}

/// A registered app, unsealed.
pub struct App {
    pub tenant_id: String,
    pub kind: AppKind,
    pub app_id: String,
    pub name: String,
    /// Callback token (signatures).
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
            token_sealed: ActiveValue::Set(seal(&seed.token, "token")),
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
        Err(RegistryError::Db(DbErr::Custom(format!(
            "app {} kept changing while it was registered",
            seed.app_id
        ))))
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
        let token = open(&r.token_sealed, "token")?;
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
            token: Secret::new(token),
            crypto,
            secret,
        })
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
            token: Secret::new(token),
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
        db.close().await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
