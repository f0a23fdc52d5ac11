//! The life of a role in a process, written once: open and migrate its database, serve its HTTP
//! API with health endpoints until shutdown, then drain. Each service's `run` calls these.

use std::net::SocketAddr;

use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;

use crate::config::{DbConfig, HttpConfig};
use crate::context::Deps;
use crate::db::{self, DbError};
use crate::http::{self, Health, Routes};

/// How long a role waits for its background tasks to finish after shutdown was signalled.
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a role could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("{role}: {source}")]
    Db {
        role: &'static str,
        #[source]
        source: DbError,
    },
    #[error("{role}: database has pending migrations ({pending}); run `scrm migrate` first")]
    PendingMigrations { role: &'static str, pending: String },
    #[error("{role}: {source}")]
    Http {
        role: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{role}: {message}")]
    Other { role: &'static str, message: String },
}

/// Connects a role's database and brings its schema up to date (embedded mode) or checks that it
/// is (production, where `scrm migrate` owns schema changes).
pub async fn open_db<M: MigratorTrait>(
    role: &'static str,
    cfg: &DbConfig,
    deps: &Deps,
) -> Result<DatabaseConnection, RoleError> {
    let wrap = |source| RoleError::Db { role, source };
    let conn = db::connect(cfg, deps.migrate_on_start)
        .await
        .map_err(wrap)?;
    if deps.migrate_on_start {
        db::migrate::<M>(&conn).await.map_err(wrap)?;
    } else {
        let pending = db::pending::<M>(&conn).await.map_err(wrap)?;
        if !pending.is_empty() {
            return Err(RoleError::PendingMigrations {
                role,
                pending: pending.join(", "),
            });
        }
    }
    Ok(conn)
}

/// Creates a role's database if needed and applies its migrations (`scrm migrate`).
pub async fn migrate<M: MigratorTrait>(
    role: &'static str,
    cfg: &DbConfig,
) -> Result<(), RoleError> {
    let wrap = |source| RoleError::Db { role, source };
    let conn = db::connect(cfg, true).await.map_err(wrap)?;
    db::migrate::<M>(&conn).await.map_err(wrap)?;
    conn.close().await.map_err(|e| wrap(DbError::Query(e)))?;
    Ok(())
}

/// Serves `routes` plus health endpoints until `deps.shutdown`, then turns readiness off and stops
/// the server gracefully.
pub async fn serve_until_shutdown(
    role: &'static str,
    cfg: &HttpConfig,
    health: Health,
    routes: Routes,
    guard: Option<http::ServiceKey>,
    deps: &Deps,
) -> Result<(), RoleError> {
    let server = http::serve(cfg, health.clone(), routes, guard)
        .map_err(|source| RoleError::Http { role, source })?;
    announce(deps, role, server.addr);
    let mut task = server.task;
    tokio::select! {
        _ = deps.shutdown.cancelled() => {
            health.set_shutting_down();
            server.handle.stop(true).await;
            let _ = task.await;
            tracing::info!(role, "Stopped");
            Ok(())
        }
        r = &mut task => {
            let message = match r {
                Ok(Ok(())) => "HTTP server stopped".to_string(),
                Ok(Err(e)) => format!("HTTP server failed: {e}"),
                Err(e) => format!("HTTP server task failed: {e}"),
            };
            Err(RoleError::Other { role, message })
        }
    }
}

fn announce(deps: &Deps, role: &'static str, addr: SocketAddr) {
    tracing::info!(role, %addr, "Listening");
    if let Some(tx) = &deps.listening {
        let _ = tx.send((role, addr));
    }
}
