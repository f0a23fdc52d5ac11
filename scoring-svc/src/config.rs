//! Configuration of the scoring service (`[scoring]` in the config file, `SCRM_SCORING__*` in the
//! environment).

use platform::config::{key, ConfigError, DbConfig, HttpConfig, Validate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Internal HTTP API listener.
    pub http: HttpConfig,
    /// The service's own database.
    pub database: DbConfig,
}

impl Validate for Config {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        self.http.validate(&key(prefix, "http"))?;
        self.database.validate(&key(prefix, "database"))
    }
}
