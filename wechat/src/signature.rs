//! WeChat signatures: the plain callback signature, `msg_signature`, the JS-SDK signature and
//! the mini-program `rawData` signature.
//!
//! Every signature is a lowercase hex SHA-1. Inputs are the raw strings as WeChat sent them
//! (timestamps stay strings: the signature covers their exact text). Every `verify_*` function
//! compares in constant time.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Lowercase hex SHA-1 of `data`.
fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// Lowercase hex SHA-1 of `parts` sorted lexicographically (byte order) and concatenated with
/// no separator. This is the shape of both the plain signature and `msg_signature`.
pub fn sorted_sha1(parts: &[&str]) -> String {
    let mut sorted: Vec<&str> = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Compares two byte strings in constant time with respect to their contents.
///
/// The lengths are not secret (a SHA-1 hex string is always 40 bytes), so a length mismatch
/// returns early.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Plain callback signature (Official Account / mini-program URL verification and plaintext
/// pushes): SHA-1 of sorted `[token, timestamp, nonce]`.
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    sorted_sha1(&[token, timestamp, nonce])
}

/// Checks the plain callback `signature` in constant time.
pub fn verify_signature(token: &str, timestamp: &str, nonce: &str, signature_hex: &str) -> bool {
    constant_time_eq(
        signature(token, timestamp, nonce).as_bytes(),
        signature_hex.as_bytes(),
    )
}

/// `msg_signature` of an encrypted message (or of the WeCom `echostr`): SHA-1 of sorted
/// `[token, timestamp, nonce, encrypt]`.
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    sorted_sha1(&[token, timestamp, nonce, encrypt])
}

/// Checks a `msg_signature` in constant time.
pub fn verify_msg_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
    msg_signature_hex: &str,
) -> bool {
    constant_time_eq(
        msg_signature(token, timestamp, nonce, encrypt).as_bytes(),
        msg_signature_hex.as_bytes(),
    )
}

/// Strips the fragment (`#…`) from a page URL, as the JS-SDK signature requires.
pub fn strip_url_fragment(url: &str) -> &str {
    match url.find('#') {
        Some(pos) => &url[..pos],
        None => url,
    }
}

/// JS-SDK signature (`wx.config` / `wx.agentConfig`): SHA-1 of
/// `jsapi_ticket=…&noncestr=…&timestamp=…&url=…` in that order with raw (not URL-encoded)
/// values; the URL's fragment is stripped.
pub fn jsapi_signature(jsapi_ticket: &str, noncestr: &str, timestamp: &str, url: &str) -> String {
    let url = strip_url_fragment(url);
    let text =
        format!("jsapi_ticket={jsapi_ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}");
    sha1_hex(text.as_bytes())
}

/// Checks a JS-SDK signature in constant time.
pub fn verify_jsapi_signature(
    jsapi_ticket: &str,
    noncestr: &str,
    timestamp: &str,
    url: &str,
    signature_hex: &str,
) -> bool {
    constant_time_eq(
        jsapi_signature(jsapi_ticket, noncestr, timestamp, url).as_bytes(),
        signature_hex.as_bytes(),
    )
}

/// Mini-program `rawData` signature: SHA-1 of `raw_data ‖ session_key` (the session key in
/// its base64 text form, as returned by `jscode2session`).
pub fn raw_data_signature(raw_data: &str, session_key: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(raw_data.as_bytes());
    hasher.update(session_key.as_bytes());
    hex::encode(hasher.finalize())
}

/// Checks a mini-program `rawData` signature in constant time.
pub fn verify_raw_data_signature(raw_data: &str, session_key: &str, signature_hex: &str) -> bool {
    constant_time_eq(
        raw_data_signature(raw_data, session_key).as_bytes(),
        signature_hex.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorting_is_bytewise() {
        // "B" (0x42) sorts before "a" (0x61).
        assert_eq!(sorted_sha1(&["a", "B"]), sha1_hex(b"Ba"));
    }

    #[test]
    fn fragment_is_stripped() {
        assert_eq!(
            strip_url_fragment("http://x/y?a=1#frag#more"),
            "http://x/y?a=1"
        );
        assert_eq!(strip_url_fragment("http://x/y"), "http://x/y");
        assert_eq!(
            jsapi_signature("t", "n", "1", "http://x/#a"),
            jsapi_signature("t", "n", "1", "http://x/")
        );
    }

    #[test]
    fn verify_rejects_other_lengths_and_case() {
        let sig = signature("token", "1", "2");
        assert!(verify_signature("token", "1", "2", &sig));
        assert!(!verify_signature("token", "1", "2", &sig[..39]));
        assert!(!verify_signature("token", "1", "2", ""));
        assert!(!verify_signature("token", "1", "2", &sig.to_uppercase()));
    }
}
