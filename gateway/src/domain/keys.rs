//! The gateway's master key and what is derived from it: a sealer for app secrets at rest and
//! HMAC keys for SDK session tokens and the sidebar's OAuth state (see `platform::crypto`).

use platform::crypto::{CryptoError, MasterKey, Sealer};

/// Why a key or sealed value is unusable.
pub type KeyError = CryptoError;

/// Sub-keys of the master key.
#[derive(Clone, Debug)]
pub struct Keys {
    secrets: Sealer,
    sdk: [u8; 32],
    sidebar: [u8; 32],
}

impl Keys {
    /// From the configured base64 master key.
    pub fn from_base64(master_b64: &str) -> Result<Self, KeyError> {
        let master = MasterKey::from_base64(master_b64)?;
        Ok(Keys {
            secrets: Sealer::new(master.derive("scrm.gateway.app-secrets.v1")),
            sdk: master.derive("scrm.gateway.sdk-session.v1"),
            sidebar: master.derive("scrm.gateway.sidebar-oauth.v1"),
        })
    }

    /// A fresh random master key in base64 (embedded mode writes one to the data dir).
    pub fn generate_base64() -> String {
        MasterKey::generate_base64()
    }

    /// Encrypts `plain`, bound to `context` (e.g. the app id and field name).
    pub fn seal(&self, plain: &str, context: &str) -> String {
        self.secrets.seal(plain, context)
    }

    /// Decrypts a value made by [`Keys::seal`] with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, KeyError> {
        self.secrets.open(sealed, context)
    }

    /// The key SDK session tokens are signed with.
    pub fn sdk_key(&self) -> &[u8; 32] {
        &self.sdk
    }

    /// The key the sidebar's OAuth `state` is signed with.
    pub fn sidebar_key(&self) -> &[u8; 32] {
        &self.sidebar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_secrets_round_trip_and_keys_differ_by_purpose() {
        let k = Keys::from_base64(&Keys::generate_base64()).unwrap();
        let s = k.seal("secret-value", "oa:wx1:secret");
        assert_eq!(k.open(&s, "oa:wx1:secret").unwrap(), "secret-value");
        assert_eq!(k.open(&s, "oa:wx2:secret"), Err(KeyError::Unseal));
        assert_eq!(Keys::from_base64("c2hvcnQ=").unwrap_err(), KeyError::BadKey);
    }
}
