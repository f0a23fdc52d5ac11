//! The gateway's master key and what is derived from it: an AES-256-GCM box for app secrets at rest
//! and an HMAC key for SDK session tokens. Sub-keys are derived with HMAC-SHA256 over a purpose
//! label, so one configured key serves both without reusing key material.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a key or sealed value is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("secret_key must be 32 bytes in standard base64 (e.g. `openssl rand -base64 32`)")]
    BadMasterKey,
    #[error("sealed value is corrupt or was sealed with another key")]
    Unseal,
}

/// Sub-keys of the master key.
#[derive(Clone)]
pub struct Keys {
    secrets: Aes256Gcm,
    sdk: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(***)")
    }
}

fn derive(master: &[u8], purpose: &str) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

impl Keys {
    /// From the configured base64 master key.
    pub fn from_base64(master_b64: &str) -> Result<Self, KeyError> {
        let master = STANDARD
            .decode(master_b64.trim())
            .map_err(|_| KeyError::BadMasterKey)?;
        if master.len() != 32 {
            return Err(KeyError::BadMasterKey);
        }
        let secrets_key = derive(&master, "scrm.gateway.app-secrets.v1");
        Ok(Keys {
            secrets: Aes256Gcm::new(&secrets_key.into()),
            sdk: derive(&master, "scrm.gateway.sdk-session.v1"),
        })
    }

    /// A fresh random master key in base64 (embedded mode writes one to the data dir).
    pub fn generate_base64() -> String {
        STANDARD.encode(rand::random::<[u8; 32]>())
    }

    /// Encrypts `plain`, binding it to `context` (e.g. the app id and field name) so a sealed value
    /// cannot be moved to another row or column. Output: base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, plain: &str, context: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        let payload = aes_gcm::aead::Payload {
            msg: plain.as_bytes(),
            aad: context.as_bytes(),
        };
        // Encryption with a valid key and a 12-byte nonce cannot fail for inputs of this size.
        let ct = self
            .secrets
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        STANDARD.encode(out)
    }

    /// Decrypts a value made by [`Keys::seal`] with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, KeyError> {
        let raw = STANDARD.decode(sealed).map_err(|_| KeyError::Unseal)?;
        if raw.len() < 12 + 16 {
            return Err(KeyError::Unseal);
        }
        let (nonce, ct) = raw.split_at(12);
        let payload = aes_gcm::aead::Payload {
            msg: ct,
            aad: context.as_bytes(),
        };
        let plain = self
            .secrets
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| KeyError::Unseal)?;
        String::from_utf8(plain).map_err(|_| KeyError::Unseal)
    }

    /// The key SDK session tokens are signed with.
    pub fn sdk_key(&self) -> &[u8; 32] {
        &self.sdk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_bound_to_context() {
        let k = Keys::from_base64(&Keys::generate_base64()).unwrap();
        let s = k.seal("secret-value", "oa:wx1:secret");
        assert_ne!(s, k.seal("secret-value", "oa:wx1:secret"), "random nonce");
        assert_eq!(k.open(&s, "oa:wx1:secret").unwrap(), "secret-value");
        assert_eq!(k.open(&s, "oa:wx2:secret"), Err(KeyError::Unseal));
        let other = Keys::from_base64(&Keys::generate_base64()).unwrap();
        assert_eq!(other.open(&s, "oa:wx1:secret"), Err(KeyError::Unseal));
        assert_eq!(k.open("bm90IHNlYWxlZA==", "x"), Err(KeyError::Unseal));
    }

    #[test]
    fn master_key_must_be_32_bytes() {
        assert_eq!(
            Keys::from_base64("c2hvcnQ=").unwrap_err(),
            KeyError::BadMasterKey
        );
        assert_eq!(
            Keys::from_base64("not base64!").unwrap_err(),
            KeyError::BadMasterKey
        );
    }
}
