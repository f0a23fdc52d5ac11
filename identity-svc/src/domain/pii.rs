//! Personal data at rest (DESIGN.md §9): a keyed hash (HMAC-SHA256) of each sensitive value for
//! lookup and uniqueness, the value sealed with AES-256-GCM bound to its row's identity, and masks
//! for API responses and events. Non-sensitive identifiers are hashed with plain SHA-256 so their
//! lookup does not depend on the key.

use platform::crypto::{hmac_sha256, CryptoError, MasterKey, Sealer};
use proto::identity::IdentifierKind;
use sha2::{Digest, Sha256};

/// Why a key or sealed value is unusable.
pub type PiiError = CryptoError;

/// Sub-keys of the configured personal-data key.
#[derive(Clone)]
pub struct Pii {
    hash_key: [u8; 32],
    seal: Sealer,
}

impl std::fmt::Debug for Pii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pii(***)")
    }
}

impl Pii {
    /// From the configured base64 key.
    pub fn from_base64(key_b64: &str) -> Result<Self, PiiError> {
        let master = MasterKey::from_base64(key_b64)?;
        Ok(Pii {
            hash_key: master.derive("scrm.identity.pii-hash.v1"),
            seal: Sealer::new(master.derive("scrm.identity.pii-seal.v1")),
        })
    }

    /// A fresh random key in base64.
    pub fn generate_base64() -> String {
        MasterKey::generate_base64()
    }

    /// Keyed hash of a sensitive value (hex), bound to its kind and namespace.
    pub fn keyed_hash(&self, kind: IdentifierKind, namespace: &str, value: &str) -> String {
        hex::encode(hmac_sha256(
            &self.hash_key,
            &[
                kind.as_str().as_bytes(),
                b"\x1f",
                namespace.as_bytes(),
                b"\x1f",
                value.as_bytes(),
            ],
        ))
    }

    /// Encrypts `plain` bound to `context`: base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, plain: &str, context: &str) -> String {
        self.seal.seal(plain, context)
    }

    /// Decrypts a value made by [`Pii::seal`] with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, PiiError> {
        self.seal.open(sealed, context)
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
