//! What the gateway announces about a tenant's own settings, for the services that compute with
//! them: today only the time zone its days, windows and schedules are counted in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;

/// `tenant.settings`: the tenant's settings after an operator created or changed it. Each message
/// carries the whole current value, stamped with when it was set, so a service keeps the one set
/// last and ignores an older one arriving late or again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// IANA zone name, e.g. `Asia/Shanghai`.
    pub time_zone: String,
    /// When the operator set it.
    pub changed_at: DateTime<Utc>,
}

impl Event for TenantSettings {
    const TYPE: &'static str = "tenant.settings";
}
