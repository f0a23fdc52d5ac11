//! Personal data at rest (DESIGN.md §9): a keyed hash (HMAC-SHA256) of each sensitive value for
//! lookup and uniqueness, the value sealed with AES-256-GCM bound to its row's identity, and masks
//! for API responses and events. Non-sensitive identifiers are hashed with plain SHA-256 so their
//! lookup does not depend on the key.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use proto::identity::IdentifierKind;
use sha2::{Digest, Sha256};

/// Why a key or sealed value is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PiiError {
    #[error("must be 32 bytes in standard base64 (e.g. `openssl rand -base64 32`)")]
    BadKey,
    #[error("sealed value is corrupt or was sealed with another key")]
    Unseal,
}

/// Sub-keys of the configured personal-data key.
#[derive(Clone)]
pub struct Pii {
    hash_key: [u8; 32],
    seal: Aes256Gcm,
}

impl std::fmt::Debug for Pii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pii(***)")
    }
}

fn derive(master: &[u8], purpose: &str) -> [u8; 32] {
    let mut mac = hmac_with(master);
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

fn hmac_with(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length")
}

impl Pii {
    /// From the configured base64 key.
    pub fn from_base64(key_b64: &str) -> Result<Self, PiiError> {
        let master = STANDARD
            .decode(key_b64.trim())
            .map_err(|_| PiiError::BadKey)?;
        if master.len() != 32 {
            return Err(PiiError::BadKey);
        }
        let seal_key = derive(&master, "scrm.identity.pii-seal.v1");
        Ok(Pii {
            hash_key: derive(&master, "scrm.identity.pii-hash.v1"),
            seal: Aes256Gcm::new(&seal_key.into()),
        })
    }

    /// A fresh random key in base64.
    pub fn generate_base64() -> String {
        STANDARD.encode(rand::random::<[u8; 32]>())
    }

    /// Keyed hash of a sensitive value (hex), bound to its kind and namespace.
    pub fn keyed_hash(&self, kind: IdentifierKind, namespace: &str, value: &str) -> String {
        let mut mac = hmac_with(&self.hash_key);
        mac.update(kind.as_str().as_bytes());
        mac.update(b"\x1f");
        mac.update(namespace.as_bytes());
        mac.update(b"\x1f");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Encrypts `plain` bound to `context`: base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, plain: &str, context: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        let payload = aes_gcm::aead::Payload {
            msg: plain.as_bytes(),
            aad: context.as_bytes(),
        };
        // Encryption with a valid key and a 12-byte nonce cannot fail for inputs of this size.
        let ct = self
            .seal
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        STANDARD.encode(out)
    }

    /// Decrypts a value made by [`Pii::seal`] with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, PiiError> {
        let raw = STANDARD.decode(sealed).map_err(|_| PiiError::Unseal)?;
        if raw.len() < 12 + 16 {
            return Err(PiiError::Unseal);
        }
        let (nonce, ct) = raw.split_at(12);
        let payload = aes_gcm::aead::Payload {
            msg: ct,
            aad: context.as_bytes(),
        };
        let plain = self
            .seal
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| PiiError::Unseal)?;
        String::from_utf8(plain).map_err(|_| PiiError::Unseal)
    }
}

/// Plain SHA-256 (hex) of a non-sensitive value: the lookup key of openids, unionids, cookies.
pub fn plain_hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// The context a sensitive value is sealed under (its identity without the value).
pub fn seal_context(tenant: &str, kind: IdentifierKind, namespace: &str) -> String {
    format!("identity:{tenant}:{}:{namespace}", kind.as_str())
}

/// A display mask: phones keep the country code, three leading and four trailing digits
/// (`+86138****8000`); e-mails keep the first character and the domain (`a***@example.com`);
/// anything else keeps its first and last two characters.
pub fn mask(kind: IdentifierKind, value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    match kind {
        IdentifierKind::Phone if chars.len() > 9 => {
            let head: String = chars[..6].iter().collect();
            let tail: String = chars[chars.len() - 4..].iter().collect();
            format!("{head}****{tail}")
        }
        IdentifierKind::Email => match value.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            None => "***".into(),
        },
        _ if chars.len() > 6 => {
            let head: String = chars[..2].iter().collect();
            let tail: String = chars[chars.len() - 2..].iter().collect();
            format!("{head}***{tail}")
        }
        _ => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_keyed_and_seal_is_bound_to_context() {
        let a = Pii::from_base64(&Pii::generate_base64()).unwrap();
        let b = Pii::from_base64(&Pii::generate_base64()).unwrap();
        let h = a.keyed_hash(IdentifierKind::Phone, "86", "+8613912345678");
        assert_eq!(
            h,
            a.keyed_hash(IdentifierKind::Phone, "86", "+8613912345678")
        );
        assert_ne!(
            h,
            b.keyed_hash(IdentifierKind::Phone, "86", "+8613912345678")
        );
        assert_ne!(
            h,
            a.keyed_hash(IdentifierKind::Phone, "1", "+8613912345678")
        );
        assert_eq!(h.len(), 64);
        let s = a.seal("+8613912345678", "ctx");
        assert_eq!(a.open(&s, "ctx").unwrap(), "+8613912345678");
        assert_eq!(a.open(&s, "other"), Err(PiiError::Unseal));
        assert_eq!(b.open(&s, "ctx"), Err(PiiError::Unseal));
        assert_eq!(Pii::from_base64("c2hvcnQ=").unwrap_err(), PiiError::BadKey);
    }

    #[test]
    fn masks() {
        assert_eq!(
            mask(IdentifierKind::Phone, "+8613912345678"),
            "+86139****5678"
        );
        assert_eq!(
            mask(IdentifierKind::Email, "alice@example.com"),
            "a***@example.com"
        );
        assert_eq!(mask(IdentifierKind::Phone, "123"), "***");
        assert_eq!(mask(IdentifierKind::OaOpenid, "oABCDEFGH"), "oA***GH");
    }
}
