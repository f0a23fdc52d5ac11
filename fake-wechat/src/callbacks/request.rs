//! The HTTP requests that carry a message to a gateway, signed (and encrypted where the mode
//! asks) as WeChat signs them, and posting them.

use wechat::signature;

use super::{
    cdata, nonce, xml_field, CallbackError, CallbackMode, CallbackResponse, PreparedCallback,
};
use crate::population::{FakeApp, FakeAppKind};
use crate::server::now_unix;

fn require_kind(
    app: &FakeApp,
    kinds: &[FakeAppKind],
    expected: &'static str,
) -> Result<(), CallbackError> {
    if kinds.contains(&app.kind) {
        Ok(())
    } else {
        Err(CallbackError::WrongApp {
            app: app.name.clone(),
            expected,
        })
    }
}

/// Builds an OA or MP push (XML, or JSON for MP when the body starts with `{`).
fn prepare_oa_like(
    gateway_base_url: &str,
    segment: &str,
    app: &FakeApp,
    body: &str,
    mode: CallbackMode,
) -> Result<PreparedCallback, CallbackError> {
    let is_json = body.trim_start().starts_with('{');
    let crypto = app.crypto();
    let timestamp = now_unix().to_string();
    let nonce = nonce();
    let (openid, to_user) = if is_json {
        let v: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| CallbackError::Invalid(format!("not JSON: {e}")))?;
        (
            v["FromUserName"].as_str().unwrap_or_default().to_owned(),
            v["ToUserName"]
                .as_str()
                .unwrap_or(&app.original_id)
                .to_owned(),
        )
    } else {
        (
            xml_field(body, "FromUserName").unwrap_or_default(),
            xml_field(body, "ToUserName").unwrap_or_else(|| app.original_id.clone()),
        )
    };
    let mut query = vec![
        (
            "signature".to_owned(),
            signature::signature(crypto.token(), &timestamp, &nonce),
        ),
        ("timestamp".to_owned(), timestamp.clone()),
        ("nonce".to_owned(), nonce.clone()),
        ("openid".to_owned(), openid),
    ];
    let body = match mode {
        CallbackMode::Plaintext => body.to_owned(),
        CallbackMode::Compatible | CallbackMode::Safe => {
            let encrypt = crypto.encrypt(body, None)?;
            query.push(("encrypt_type".to_owned(), "aes".to_owned()));
            query.push((
                "msg_signature".to_owned(),
                crypto.msg_signature(&timestamp, &nonce, &encrypt),
            ));
            match (mode, is_json) {
                (CallbackMode::Safe, false) => format!(
                    "<xml><ToUserName>{}</ToUserName><Encrypt>{}</Encrypt></xml>",
                    cdata(&to_user),
                    cdata(&encrypt)
                ),
                (CallbackMode::Safe, true) => {
                    serde_json::json!({ "ToUserName": to_user, "Encrypt": encrypt }).to_string()
                }
                (_, false) => {
                    let at = body.rfind("</xml>").ok_or_else(|| {
                        CallbackError::Invalid("XML without a closing </xml>".to_owned())
                    })?;
                    format!(
                        "{}<Encrypt>{}</Encrypt>{}",
                        &body[..at],
                        cdata(&encrypt),
                        &body[at..]
                    )
                }
                (_, true) => {
                    let mut v: serde_json::Value = serde_json::from_str(body)
                        .map_err(|e| CallbackError::Invalid(format!("not JSON: {e}")))?;
                    let obj = v.as_object_mut().ok_or_else(|| {
                        CallbackError::Invalid("JSON callback is not an object".to_owned())
                    })?;
                    obj.insert("Encrypt".to_owned(), encrypt.into());
                    v.to_string()
                }
            }
        }
    };
    Ok(PreparedCallback {
        url: format!(
            "{}/wechat/{segment}/{}",
            gateway_base_url.trim_end_matches('/'),
            app.appid
        ),
        query,
        body,
        content_type: if is_json {
            "application/json"
        } else {
            "text/xml"
        },
    })
}

/// An Official Account push to `{gateway}/wechat/oa/{appid}`.
pub fn prepare_oa(
    gateway_base_url: &str,
    app: &FakeApp,
    xml: &str,
    mode: CallbackMode,
) -> Result<PreparedCallback, CallbackError> {
    require_kind(app, &[FakeAppKind::OfficialAccount], "Official Account")?;
    prepare_oa_like(gateway_base_url, "oa", app, xml, mode)
}

/// A mini-program push (XML or JSON) to `{gateway}/wechat/mp/{appid}`.
pub fn prepare_mp(
    gateway_base_url: &str,
    app: &FakeApp,
    body: &str,
    mode: CallbackMode,
) -> Result<PreparedCallback, CallbackError> {
    require_kind(app, &[FakeAppKind::MiniProgram], "mini-program")?;
    prepare_oa_like(gateway_base_url, "mp", app, body, mode)
}

/// A WeCom push to `{gateway}/wechat/wecom/{corpid}` (always encrypted).
pub fn prepare_wecom(
    gateway_base_url: &str,
    app: &FakeApp,
    xml: &str,
) -> Result<PreparedCallback, CallbackError> {
    require_kind(app, &[FakeAppKind::WeCom], "WeCom")?;
    let crypto = app.crypto();
    let timestamp = now_unix().to_string();
    let nonce = nonce();
    let encrypt = crypto.encrypt(xml, None)?;
    let agent_id = app.agent_id.map(|id| id.to_string()).unwrap_or_default();
    Ok(PreparedCallback {
        url: format!(
            "{}/wechat/wecom/{}",
            gateway_base_url.trim_end_matches('/'),
            app.appid
        ),
        query: vec![
            (
                "msg_signature".to_owned(),
                crypto.msg_signature(&timestamp, &nonce, &encrypt),
            ),
            ("timestamp".to_owned(), timestamp),
            ("nonce".to_owned(), nonce),
        ],
        body: format!(
            "<xml><ToUserName>{}</ToUserName><AgentID>{}</AgentID><Encrypt>{}</Encrypt></xml>",
            cdata(&app.appid),
            cdata(&agent_id),
            cdata(&encrypt)
        ),
        content_type: "text/xml",
    })
}

/// Posts a prepared callback.
pub(crate) async fn post(
    http: &reqwest::Client,
    cb: &PreparedCallback,
) -> Result<CallbackResponse, CallbackError> {
    let response = http
        .post(&cb.url)
        .query(&cb.query)
        .header(reqwest::header::CONTENT_TYPE, cb.content_type)
        .body(cb.body.clone())
        .send()
        .await
        .map_err(|e| CallbackError::Http(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| CallbackError::Http(e.to_string()))?;
    Ok(CallbackResponse { status, body })
}
