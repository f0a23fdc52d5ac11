//! Internal HTTP API of the identity service.

use std::sync::Arc;

use platform::http::Routes;
use sea_orm::DatabaseConnection;

/// Routes of the internal API (health, readiness and metrics are added by the platform).
pub fn routes(db: DatabaseConnection) -> Routes {
    Arc::new(move |cfg| {
        cfg.app_data(actix_web::web::Data::new(db.clone()));
    })
}
