//! SDK session tokens: what `POST /mp/{appid}/session` hands a mini-program after login and what
//! `/mp/{appid}/phone` and `/track` accept as proof of who is calling. A token is
//! `base64url(claims JSON) "." base64url(HMAC-SHA256(claims))`, checked in constant time, with an
//! expiry. It never carries the WeChat session_key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Tenant of the mini-program.
    pub tid: String,
    /// Mini-program appid.
    pub app: String,
    /// The user's openid in that mini-program.
    pub oid: String,
    /// UnionID when WeChat returned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("session token is malformed")]
    Malformed,
    #[error("session token signature is invalid")]
    BadSignature,
    #[error("session token has expired")]
    Expired,
}

fn mac(key: &[u8; 32], data: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m
}

/// Signs `claims`.
pub fn sign(key: &[u8; 32], claims: &Claims) -> String {
    sign_json(key, claims)
}

/// Verifies a token at time `now` (Unix seconds).
pub fn verify(key: &[u8; 32], token: &str, now: i64) -> Result<Claims, TokenError> {
    let claims: Claims = verify_json(key, token)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// `base64url(JSON of value) "." base64url(HMAC-SHA256)`: the token shape, for any claims.
pub fn sign_json<T: Serialize>(key: &[u8; 32], value: &T) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default());
    let sig = URL_SAFE_NO_PAD.encode(mac(key, body.as_bytes()).finalize().into_bytes());
    format!("{body}.{sig}")
}

/// The claims of a token made by [`sign_json`] under `key` (signature checked in constant time;
/// expiry is the caller's to check).
pub fn verify_json<T: serde::de::DeserializeOwned>(
    key: &[u8; 32],
    token: &str,
) -> Result<T, TokenError> {
    let (body, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Malformed)?;
    mac(key, body.as_bytes())
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    let raw = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&raw).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            tid: "t1".into(),
            app: "wxmp".into(),
            oid: "o1".into(),
            uid: Some("u1".into()),
            exp,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let key = [7u8; 32];
        let t = sign(&key, &claims(2_000));
        assert_eq!(verify(&key, &t, 1_000).unwrap(), claims(2_000));
        assert_eq!(verify(&key, &t, 2_000), Err(TokenError::Expired));
        assert_eq!(verify(&[8u8; 32], &t, 1_000), Err(TokenError::BadSignature));
        let forged = format!(
            "{}.{}",
            sign(&key, &claims(9_999)).split('.').next().unwrap(),
            t.split('.').nth(1).unwrap()
        );
        assert_eq!(verify(&key, &forged, 1_000), Err(TokenError::BadSignature));
        assert_eq!(verify(&key, "garbage", 1_000), Err(TokenError::Malformed));
    }
}
