//! The dependencies a role is built from: the bus and cache it shares with the other roles of its
//! process, and the shutdown signal. Each service adds its own database connection.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use crate::cache::Cache;
use crate::http::Health;
use crate::tasks::Tasks;

/// Shared runtime dependencies of a role.
#[derive(Clone)]
pub struct Deps {
    pub bus: Arc<dyn Bus>,
    pub cache: Arc<dyn Cache>,
    /// Cancelled when the process is shutting down.
    pub shutdown: CancellationToken,
    /// Run migrations at start (embedded mode) instead of requiring `scrm migrate`.
    pub migrate_on_start: bool,
    /// Told each role's bound address once it listens (the binary prints them; tests read them).
    pub listening: Option<tokio::sync::mpsc::UnboundedSender<(&'static str, std::net::SocketAddr)>>,
    /// The process's supervised background tasks (every role's relay, consumer, schedulers,
    /// workers and jobs); their liveness is part of each role's readiness.
    pub tasks: Tasks,
    /// Where the other roles of this process listen, once they do (`scrm up`: the gateway
    /// reaches the services there when no URL is configured).
    pub peers: Peers,
}

/// Role name → the address it listens on, filled as roles of the process start.
pub type Peers =
    std::sync::Arc<std::sync::RwLock<std::collections::BTreeMap<String, std::net::SocketAddr>>>;

impl Deps {
    /// Readiness for a role: its database (when it has one), the bus, the cache and its
    /// supervised background tasks (none down, none silent past its deadline).
    pub fn health(&self, role: &'static str, db: Option<&DatabaseConnection>) -> Health {
        let mut health = Health::new(role);
        if let Some(db) = db {
            let db = db.clone();
            health = health.check("database", move || {
                let db = db.clone();
                async move { db.ping().await.map_err(|e| e.to_string()) }
            });
        }
        let bus = self.bus.clone();
        let cache = self.cache.clone();
        let tasks = self.tasks.clone();
        health
            .check("bus", move || {
                let bus = bus.clone();
                async move { bus.ping().await.map_err(|e| e.to_string()) }
            })
            .check("cache", move || {
                let cache = cache.clone();
                async move { cache.ping().await.map_err(|e| e.to_string()) }
            })
            .check("tasks", move || {
                let r = tasks.check(role);
                async move { r }
            })
    }
}
