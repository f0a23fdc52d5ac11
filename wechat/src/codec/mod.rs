//! Callback codecs: the POST body as received ([`parse_outer_xml`], [`parse_outer_json`]) and the
//! decrypted or plain inner message ([`parse_oa`], [`parse_wecom`], [`parse_mp_xml`],
//! [`parse_mp_json`]) into typed [`proto::channel::ChannelEvent`]s.
//!
//! Robustness rules, for every entry point:
//! - a body over 1 MiB, nested deeper than 16 elements or with more than 10 000 elements is
//!   refused ([`Limits`]);
//! - `<!DOCTYPE …>` is refused outright, so no entity can be declared (XXE); only the five
//!   predefined entities and character references are resolved;
//! - the root element must be `<xml>`; CDATA and plain text are both accepted;
//! - field names are case-sensitive (`MsgId` for messages, `MsgID` for job results);
//! - the values of `MsgType`, `Event` and `ChangeType` are matched ignoring ASCII case (no two
//!   known values differ only in case); unknown events keep them as sent;
//! - a field present twice where one is expected is refused, never guessed;
//! - unknown extra elements are ignored for known events; an unknown event keeps them all;
//! - nothing panics: every failure is a [`CodecError`] whose message names the field, suitable
//!   for a 400 answer (`missing field CreateTime`, `invalid integer in MsgId`, …).
//!
//! Route tenants by the URL or the decrypted receive id, never by the outer `ToUserName` /
//! `AgentID`: they are not covered by `msg_signature`. In compatible mode the outer plain fields
//! are unsigned too; parse the decrypted message instead.

mod events;
mod fields;
mod tree;

use proto::channel::{Channel, ChannelEvent};

use fields::Fields;
pub use tree::Limits;

/// Why a body could not be read. Every variant that concerns a field names it (nested fields by
/// path, e.g. `SubscribeMsgPopupEvent/List[1]/TemplateId`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The body exceeds [`Limits::max_body_bytes`].
    #[error("body too large: {size} bytes, limit {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The body is not UTF-8.
    #[error("body is not valid UTF-8")]
    NotUtf8,
    /// A `<!DOCTYPE …>` declaration (and with it any entity declaration) was present.
    #[error("doctype not allowed")]
    DoctypeNotAllowed,
    /// An entity reference other than the five predefined ones.
    #[error("entity reference &{0}; not allowed")]
    EntityNotAllowed(String),
    /// Elements nested deeper than [`Limits::max_depth`].
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    /// More elements than [`Limits::max_elements`].
    #[error("more than {0} elements")]
    TooManyElements(usize),
    /// The document ended before it was complete.
    #[error("truncated document: {0}")]
    Truncated(String),
    /// The root element is not `<xml>`.
    #[error("root element must be <xml>, found <{0}>")]
    UnexpectedRoot(String),
    /// Malformed XML.
    #[error("malformed XML: {0}")]
    Xml(String),
    /// Malformed JSON.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// A required field is absent (or empty where a value is needed).
    #[error("missing field {0}")]
    MissingField(String),
    /// A field expected once appears more than once.
    #[error("duplicate field {0}")]
    DuplicateField(String),
    /// A field expected to be text has child elements.
    #[error("field {0} must be text, found child elements")]
    NotText(String),
    /// A field is not a (non-negative, in range) integer.
    #[error("invalid integer in {0}")]
    InvalidInteger(String),
    /// A field is not a finite decimal number.
    #[error("invalid number in {0}")]
    InvalidNumber(String),
    /// A timestamp outside 1970..=9999.
    #[error("invalid timestamp in {0}")]
    InvalidTimestamp(String),
}

impl CodecError {
    /// The field the error is about, if it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            CodecError::MissingField(f)
            | CodecError::DuplicateField(f)
            | CodecError::NotText(f)
            | CodecError::InvalidInteger(f)
            | CodecError::InvalidNumber(f)
            | CodecError::InvalidTimestamp(f) => Some(f),
            _ => None,
        }
    }

    /// Prefixes the field path of a field error with `path/` (used for nested elements).
    fn with_prefix(self, path: &str) -> Self {
        let join = |f: String| format!("{path}/{f}");
        match self {
            CodecError::MissingField(f) => CodecError::MissingField(join(f)),
            CodecError::DuplicateField(f) => CodecError::DuplicateField(join(f)),
            CodecError::NotText(f) => CodecError::NotText(join(f)),
            CodecError::InvalidInteger(f) => CodecError::InvalidInteger(join(f)),
            CodecError::InvalidNumber(f) => CodecError::InvalidNumber(join(f)),
            CodecError::InvalidTimestamp(f) => CodecError::InvalidTimestamp(join(f)),
            other => other,
        }
    }
}

/// The encryption mode a POST body was sent in (protocol §A).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackMode {
    /// Plain fields only, no `Encrypt`.
    Plain,
    /// Plain fields and `Encrypt` (OA compatible mode).
    Compatible,
    /// `Encrypt` (and `ToUserName`, `AgentID`) only.
    Safe,
}

/// The outer POST body, read before decryption. `parse_outer_json` returns the same shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OuterBody {
    /// `ToUserName`: the original id (`gh_…`), corpid or suite id. Unsigned: do not route on it.
    pub to_user_name: String,
    /// `Encrypt`: the base64 ciphertext, when present and non-empty.
    pub encrypt: Option<String>,
    /// `AgentID` (WeCom), when present and non-empty. Unsigned.
    pub agent_id: Option<String>,
    /// Whether plain message fields (`FromUserName`, `CreateTime`, `MsgType`) are present:
    /// plaintext or compatible mode.
    pub has_plain_fields: bool,
}

/// The outer XML body ([`OuterBody`]).
pub type OuterXml = OuterBody;

impl OuterBody {
    /// Plain, compatible or safe mode, from which fields are present.
    pub fn mode(&self) -> CallbackMode {
        match (self.encrypt.is_some(), self.has_plain_fields) {
            (true, true) => CallbackMode::Compatible,
            (true, false) => CallbackMode::Safe,
            (false, _) => CallbackMode::Plain,
        }
    }
}

/// Checks the size of raw bytes, then that they are UTF-8.
fn body_str(body: &[u8]) -> Result<&str, CodecError> {
    let limits = Limits::DEFAULT;
    if body.len() > limits.max_body_bytes {
        return Err(CodecError::TooLarge {
            size: body.len(),
            limit: limits.max_body_bytes,
        });
    }
    std::str::from_utf8(body).map_err(|_| CodecError::NotUtf8)
}

fn outer(root: &tree::Node) -> Result<OuterBody, CodecError> {
    let f = Fields::new(root);
    let has = |name: &'static str| f.all(name).next().is_some();
    Ok(OuterBody {
        to_user_name: f.non_empty("ToUserName")?,
        encrypt: f.opt_string("Encrypt")?,
        agent_id: f.opt_string("AgentID")?,
        has_plain_fields: has("FromUserName") || has("CreateTime") || has("MsgType"),
    })
}

/// Reads the POST body as received (OA, WeCom, MP XML): `ToUserName`, optional `Encrypt` and
/// `AgentID`, and whether plain fields are present.
pub fn parse_outer_xml(body: &[u8]) -> Result<OuterXml, CodecError> {
    let root = tree::parse_xml(body_str(body)?, &Limits::DEFAULT)?;
    outer(&root)
}

/// Reads a mini-program JSON POST body as received: safe mode `{"ToUserName","Encrypt"}`, or a
/// plain JSON message.
pub fn parse_outer_json(body: &[u8]) -> Result<OuterBody, CodecError> {
    let root = tree::parse_json(body_str(body)?, &Limits::DEFAULT)?;
    outer(&root)
}

/// Reads an inner XML message of `channel` with explicit limits.
pub fn parse_xml_with(
    channel: Channel,
    xml: &str,
    limits: &Limits,
) -> Result<ChannelEvent, CodecError> {
    events::to_event(channel, &tree::parse_xml(xml, limits)?)
}

/// Reads an inner JSON message of `channel` with explicit limits.
pub fn parse_json_with(
    channel: Channel,
    json: &str,
    limits: &Limits,
) -> Result<ChannelEvent, CodecError> {
    events::to_event(channel, &tree::parse_json(json, limits)?)
}

/// An Official Account message or event (decrypted, or the plain body in plaintext mode).
pub fn parse_oa(xml: &str) -> Result<ChannelEvent, CodecError> {
    parse_xml_with(Channel::Oa, xml, &Limits::DEFAULT)
}

/// A WeCom callback message or event (decrypted).
pub fn parse_wecom(xml: &str) -> Result<ChannelEvent, CodecError> {
    parse_xml_with(Channel::WeCom, xml, &Limits::DEFAULT)
}

/// A mini-program message push in XML.
pub fn parse_mp_xml(xml: &str) -> Result<ChannelEvent, CodecError> {
    parse_xml_with(Channel::Mp, xml, &Limits::DEFAULT)
}

/// A mini-program message push in JSON.
pub fn parse_mp_json(json: &str) -> Result<ChannelEvent, CodecError> {
    parse_json_with(Channel::Mp, json, &Limits::DEFAULT)
}

/// An inner message of `channel` in either format: JSON when the first non-blank character is
/// `{`, XML otherwise (useful for replaying recorded callbacks).
pub fn parse_inner(channel: Channel, body: &str) -> Result<ChannelEvent, CodecError> {
    let trimmed = body.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if trimmed.starts_with('{') {
        parse_json_with(channel, body, &Limits::DEFAULT)
    } else {
        parse_xml_with(channel, body, &Limits::DEFAULT)
    }
}
