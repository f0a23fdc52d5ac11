//! `/healthz` (the process is alive), `/readyz` (its dependencies answer; 503 while shutting down)
//! and `/metrics` (Prometheus text).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};

/// A readiness check's result.
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
/// A readiness check.
pub type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness and readiness of one role.
#[derive(Clone)]
pub struct Health {
    role: &'static str,
    checks: Vec<(&'static str, Check)>,
    shutting_down: Arc<AtomicBool>,
}

impl Health {
    pub fn new(role: &'static str) -> Self {
        Health {
            role,
            checks: Vec::new(),
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Adds a named dependency check.
    pub fn check<F, Fut>(mut self, name: &'static str, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((name, Arc::new(move || Box::pin(f()))));
        self
    }

    /// From now on `/readyz` answers 503 so load balancers stop sending traffic.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Runs every check; `(ready, per-check results)`.
    pub async fn readiness(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        let mut ok = !self.shutting_down.load(Ordering::SeqCst);
        let mut results = serde_json::Map::new();
        let runs = self.checks.iter().map(|(name, check)| async move {
            let r = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            (*name, r)
        });
        for (name, r) in futures_util::future::join_all(runs).await {
            match r {
                Ok(()) => {
                    results.insert(name.into(), "ok".into());
                }
                Err(e) => {
                    ok = false;
                    results.insert(name.into(), e.into());
                }
            }
        }
        (ok, results)
    }
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn healthz(health: web::Data<Health>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "alive", "role": health.role}))
}

async fn readyz(health: web::Data<Health>) -> HttpResponse {
    let (ready, checks) = health.readiness().await;
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "role": health.role,
        "checks": checks,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::telemetry::metrics().render())
}
