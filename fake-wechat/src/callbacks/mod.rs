//! Callbacks the fake pushes to a gateway, as WeChat would: builders for the XML / JSON messages
//! of Official Accounts, WeCom and mini-programs, and the signed (and, where the mode asks,
//! encrypted) HTTP requests that carry them.
//!
//! - OA / MP: `POST {gateway}/wechat/oa/{appid}` (`/wechat/mp/{appid}`) with `signature`,
//!   `timestamp`, `nonce`, `openid`, and in compatible / safe mode `encrypt_type=aes` and
//!   `msg_signature`. Compatible mode keeps the plain fields and adds `<Encrypt>`; safe mode sends
//!   only `ToUserName` and `Encrypt`.
//! - WeCom: `POST {gateway}/wechat/wecom/{corpid}`, always encrypted, `msg_signature`,
//!   `timestamp`, `nonce`; the envelope carries `ToUserName`, `AgentID`, `Encrypt`.
//!
//! [`CallbackBuilder`] builds the messages, one file per sender (`oa.rs`, `miniprogram.rs`,
//! `wecom.rs`); `request.rs` wraps them into the requests a gateway receives and posts them.

mod miniprogram;
mod oa;
mod request;
mod wecom;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use rand::Rng;

pub(crate) use self::request::post;
pub use self::request::{prepare_mp, prepare_oa, prepare_wecom};
use crate::population::FakeApp;
use crate::server::now_unix;
use wechat::crypto::CryptoError;

/// How an OA / MP callback is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackMode {
    /// Plain XML / JSON, `signature` only.
    Plaintext,
    /// Plain fields plus `Encrypt`, both signatures.
    Compatible,
    /// Only `ToUserName` and `Encrypt`, both signatures.
    Safe,
}

/// Why a callback could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// Encryption failed.
    #[error("cannot encrypt the callback: {0}")]
    Crypto(#[from] CryptoError),
    /// The message is not what the mode needs (e.g. JSON that is not an object).
    #[error("invalid callback message: {0}")]
    Invalid(String),
    /// The app is of another kind than the channel.
    #[error("{app} is not a {expected} app")]
    WrongApp {
        /// The app name.
        app: String,
        /// The kind the channel needs.
        expected: &'static str,
    },
    /// The HTTP request failed.
    #[error("cannot deliver the callback: {0}")]
    Http(String),
}

/// A callback ready to be posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedCallback {
    /// Full URL without the query.
    pub url: String,
    /// Query parameters in the order WeChat sends them.
    pub query: Vec<(String, String)>,
    /// Request body.
    pub body: String,
    /// `text/xml` or `application/json`.
    pub content_type: &'static str,
}

impl PreparedCallback {
    /// The value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the gateway answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackResponse {
    /// HTTP status.
    pub status: u16,
    /// Body as text.
    pub body: String,
}

/// `<![CDATA[…]]>` with `]]>` split so any text survives.
pub(crate) fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

/// The text of the first `<tag>` element (CDATA unwrapped), for reading back our own XML.
fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    let inner = xml[start..end].trim();
    Some(
        inner
            .strip_prefix("<![CDATA[")
            .and_then(|s| s.strip_suffix("]]>"))
            .unwrap_or(inner)
            .replace("]]]]><![CDATA[>", "]]>"),
    )
}

static MSG_BASE: OnceLock<u64> = OnceLock::new();
static MSG_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh message id: 19 digits like WeChat's, unique within the process, starting from a
/// random point so two runs do not collide in a shared store.
fn next_msg_id() -> u64 {
    let base = *MSG_BASE.get_or_init(|| {
        6_000_000_000_000_000_000 + rand::rng().random_range(0..1_000_000_000_000_000u64)
    });
    base + MSG_COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn nonce() -> String {
    rand::rng()
        .random_range(100_000_000u64..10_000_000_000)
        .to_string()
}

/// Builds callback messages for one app. Every message has the current `CreateTime`.
#[derive(Debug, Clone)]
pub struct CallbackBuilder<'a> {
    app: &'a FakeApp,
}

impl<'a> CallbackBuilder<'a> {
    pub(crate) fn new(app: &'a FakeApp) -> Self {
        CallbackBuilder { app }
    }

    fn envelope(&self, from: &str, msg_type: &str, rest: &str) -> String {
        format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{}</CreateTime><MsgType>{}</MsgType>{rest}</xml>",
            cdata(&self.app.original_id),
            cdata(from),
            now_unix(),
            cdata(msg_type),
        )
    }

    fn oa_event(&self, openid: &str, event: &str, rest: &str) -> String {
        self.envelope(
            openid,
            "event",
            &format!("<Event>{}</Event>{rest}", cdata(event)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdata_survives_terminators() {
        let xml = format!("<xml><A>{}</A></xml>", cdata("x]]>y"));
        assert_eq!(xml_field(&xml, "A").as_deref(), Some("x]]>y"));
    }

    #[test]
    fn msg_ids_are_unique() {
        let a = next_msg_id();
        let b = next_msg_id();
        assert_ne!(a, b);
        assert!(a >= 6_000_000_000_000_000_000);
    }
}
