//! Secrets at rest, written once for every service: a 32-byte master key from config, sub-keys
//! derived per purpose with HMAC-SHA256 (one configured key never reuses key material across
//! purposes), and AES-256-GCM sealing bound to a context string (so a sealed value cannot be
//! moved to another row or column).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a key or a sealed value is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("must be 32 bytes in standard base64 (e.g. `openssl rand -base64 32`)")]
    BadKey,
    #[error("sealed value is corrupt or was sealed with another key")]
    Unseal,
}

/// A configured 32-byte master key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// From standard base64 (surrounding white space ignored).
    pub fn from_base64(b64: &str) -> Result<Self, CryptoError> {
        let raw = STANDARD
            .decode(b64.trim())
            .map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = raw.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(MasterKey(key))
    }

    /// A fresh random key in base64.
    pub fn generate_base64() -> String {
        STANDARD.encode(rand::random::<[u8; 32]>())
    }

    /// The sub-key for `purpose` (a fixed label such as `scrm.gateway.app-secrets.v1`).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        hmac_sha256(&self.0, &[purpose.as_bytes()])
    }
}

/// HMAC-SHA256 of `parts` concatenated.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// AES-256-GCM sealing with a context bound as associated data.
#[derive(Clone)]
pub struct Sealer(Aes256Gcm);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    pub fn new(key: [u8; 32]) -> Self {
        Sealer(Aes256Gcm::new(&key.into()))
    }

    /// Encrypts `plain` bound to `context`: base64(nonce ‖ ciphertext ‖ tag), a fresh nonce each
    /// time.
    pub fn seal(&self, plain: &str, context: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: context.as_bytes(),
        };
        // Encryption with a valid key and a 12-byte nonce cannot fail for inputs of this size.
        let ct = self
            .0
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        STANDARD.encode(out)
    }

    /// Decrypts a value made by [`Sealer::seal`] under the same key and `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, CryptoError> {
        let raw = STANDARD.decode(sealed).map_err(|_| CryptoError::Unseal)?;
        if raw.len() < 12 + 16 {
            return Err(CryptoError::Unseal);
        }
        let (nonce, ct) = raw.split_at(12);
        let payload = Payload {
            msg: ct,
            aad: context.as_bytes(),
        };
        let plain = self
            .0
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| CryptoError::Unseal)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Unseal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_bound_to_key_and_context() {
        let k = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let s = Sealer::new(k.derive("a"));
        let sealed = s.seal("secret", "ctx1");
        assert_ne!(sealed, s.seal("secret", "ctx1"), "fresh nonce");
        assert_eq!(s.open(&sealed, "ctx1").unwrap(), "secret");
        assert_eq!(s.open(&sealed, "ctx2"), Err(CryptoError::Unseal));
        assert_eq!(
            Sealer::new(k.derive("b")).open(&sealed, "ctx1"),
            Err(CryptoError::Unseal)
        );
        assert_eq!(s.open("bm90IHNlYWxlZA==", "x"), Err(CryptoError::Unseal));
        assert_eq!(s.open("%%%", "x"), Err(CryptoError::Unseal));
    }

    #[test]
    fn master_key_is_32_bytes_of_base64() {
        assert_eq!(
            MasterKey::from_base64("c2hvcnQ=").unwrap_err(),
            CryptoError::BadKey
        );
        assert_eq!(
            MasterKey::from_base64("not base64!").unwrap_err(),
            CryptoError::BadKey
        );
        assert_ne!(
            MasterKey::from_base64(&MasterKey::generate_base64())
                .unwrap()
                .derive("x"),
            MasterKey::from_base64(&MasterKey::generate_base64())
                .unwrap()
                .derive("x")
        );
    }
}
