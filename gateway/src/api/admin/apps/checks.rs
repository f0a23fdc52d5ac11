//! An app's values checked as WeChat defines them (callback token, EncodingAESKey, secret, an
//! agent app's AgentID); each refusal names the field.

use platform::http::ApiError;

use crate::config::MAX_AGENT_ID;
use crate::registry::AppKind;

use super::{invalid, Values};

/// Checks an app's values as WeChat defines them; the message names the field.
pub(super) fn check(v: &Values<'_>) -> Result<(), ApiError> {
    let id_ok = (3..=64).contains(&v.app_id.len())
        && v.app_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !id_ok {
        return Err(invalid(
            "invalid_app_id",
            "app_id",
            "must be the appid / corpid (3–64 letters and digits)",
        ));
    }
    if !v.kind.takes_callbacks() {
        return check_agent(v);
    }
    if v.agent_id.is_some() {
        return Err(invalid(
            "invalid_agent_id",
            "agent_id",
            "is only for kind `wecom_agent`",
        ));
    }
    let token = v.token.ok_or_else(|| {
        invalid(
            "missing_field",
            "token",
            "is required (WeChat's callback Token)",
        )
    })?;
    // WeChat: the callback Token is 3–32 letters and digits.
    if !(3..=32).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(
            "invalid_token",
            "token",
            "must be 3–32 letters and digits (WeChat's Token)",
        ));
    }
    match v.aes {
        Some(k) => {
            wechat::crypto::MsgCrypto::new(token.to_string(), k, v.app_id.to_string()).map_err(
                |e| {
                    invalid(
                        "invalid_encoding_aes_key",
                        "encoding_aes_key",
                        &format!("is not a valid EncodingAESKey ({e})"),
                    )
                },
            )?;
        }
        None if v.kind == AppKind::Wecom => {
            return Err(invalid(
                "missing_field",
                "encoding_aes_key",
                "is required for a WeCom corp (callbacks are always encrypted)",
            ));
        }
        None => {}
    }
    Ok(())
}

/// A `wecom_agent` app: its AgentID and own secret, no callback token or key.
pub(super) fn check_agent(v: &Values<'_>) -> Result<(), ApiError> {
    match v.agent_id {
        None => {
            return Err(invalid(
                "missing_field",
                "agent_id",
                "is required for a `wecom_agent` app (its AgentID)",
            ))
        }
        Some(id) if !(1..=MAX_AGENT_ID).contains(&id) => {
            return Err(invalid(
                "invalid_agent_id",
                "agent_id",
                &format!("must be an AgentID between 1 and {MAX_AGENT_ID}"),
            ))
        }
        Some(_) => {}
    }
    if v.token.is_some() {
        return Err(invalid(
            "invalid_token",
            "token",
            "is not for a `wecom_agent` app (it takes no callbacks here)",
        ));
    }
    if v.aes.is_some() {
        return Err(invalid(
            "invalid_encoding_aes_key",
            "encoding_aes_key",
            "is not for a `wecom_agent` app (it takes no callbacks here)",
        ));
    }
    let secret_ok = v
        .secret
        .is_some_and(|s| (1..=128).contains(&s.len()) && !s.chars().any(char::is_whitespace));
    if !secret_ok {
        return Err(invalid(
            "missing_field",
            "secret",
            "is required for a `wecom_agent` app (its own Secret, 1–128 characters)",
        ));
    }
    Ok(())
}
