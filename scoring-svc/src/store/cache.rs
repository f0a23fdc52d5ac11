//! Each tenant's definitions, compiled once per version. Before use the cached copy is checked
//! against the tenant's version in the database at most once per [`RECHECK`] (a change made on
//! another instance applies here within that time; one made through this instance's API applies
//! at once, as it invalidates the cache).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DbErr};

use super::defs;
use crate::domain::compiled::Compiled;

/// How long a compiled copy is used without asking for the tenant's version.
pub const RECHECK: Duration = Duration::from_millis(500);

#[derive(Clone)]
struct Entry {
    compiled: Arc<Compiled>,
    checked: Instant,
}

/// The compiled definitions of every tenant seen. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct DefsCache {
    map: Arc<Mutex<HashMap<String, Entry>>>,
}

impl DefsCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The tenant's definitions, current within [`RECHECK`].
    pub async fn get(&self, db: &DatabaseConnection, tenant: &str) -> Result<Arc<Compiled>, DbErr> {
        let cached = self.lock().get(tenant).cloned();
        if let Some(e) = &cached {
            if e.checked.elapsed() < RECHECK {
                return Ok(e.compiled.clone());
            }
            let v = defs::version(db, tenant).await?;
            if v == e.compiled.version {
                if let Some(x) = self.lock().get_mut(tenant) {
                    x.checked = Instant::now();
                }
                return Ok(e.compiled.clone());
            }
        }
        let d = defs::load(db, tenant).await?;
        let compiled = Arc::new(Compiled::compile(
            d.version, d.models, d.rules, d.machine, d.triggers,
        ));
        self.lock().insert(
            tenant.to_string(),
            Entry {
                compiled: compiled.clone(),
                checked: Instant::now(),
            },
        );
        Ok(compiled)
    }

    /// Forgets a tenant's copy (after a definition changed through this instance).
    pub fn invalidate(&self, tenant: &str) {
        self.lock().remove(tenant);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}
