//! WeChat callbacks: `GET`/`POST /wechat/oa/{appid}`, `/wechat/wecom/{corpid}`,
//! `/wechat/mp/{appid}`.
//!
//! GET answers URL verification (the echostr as is for OA/MP; decrypted for WeCom). POST checks the
//! timestamp window and the signature (plain `signature` for OA/MP, `msg_signature` over the
//! ciphertext for safe mode and WeCom), decrypts with the receive-id checked against the app the URL
//! names, parses into a typed event and publishes it with a broker confirm before answering 200.
//! Bad signatures get 403, malformed bodies 400 with the reason, and a broker that cannot confirm in
//! time 503 — so WeChat retries and nothing answered 200 is lost.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::Utc;
use platform::http::{ApiError, RequestId};
use proto::callback::CallbackReceived;
use proto::channel::ChannelEvent;
use proto::Envelope;
use serde::Deserialize;
use wechat::codec;
use wechat::crypto::CryptoError;

use super::GatewayState;
use crate::publish::Published;
use crate::registry::{App, AppKind};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/wechat/oa/{appid}")
            .route(web::get().to(|s, p, q| verify_url(s, p, q, AppKind::Oa)))
            .route(web::post().to(|s, p, q, r, b| receive(s, p, q, r, b, AppKind::Oa))),
    )
    .service(
        web::resource("/wechat/mp/{appid}")
            .route(web::get().to(|s, p, q| verify_url(s, p, q, AppKind::Mp)))
            .route(web::post().to(|s, p, q, r, b| receive(s, p, q, r, b, AppKind::Mp))),
    )
    .service(
        web::resource("/wechat/wecom/{corpid}")
            .route(web::get().to(|s, p, q| verify_url(s, p, q, AppKind::Wecom)))
            .route(web::post().to(|s, p, q, r, b| receive(s, p, q, r, b, AppKind::Wecom))),
    );
}

/// Query parameters WeChat sends (all optional here; each path checks what it needs).
#[derive(Debug, Deserialize)]
pub(crate) struct CallbackQuery {
    signature: Option<String>,
    msg_signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
    echostr: Option<String>,
    encrypt_type: Option<String>,
    #[allow(dead_code)]
    openid: Option<String>,
}

/// A refused callback: status, stable code, reason; counted by reason.
fn refuse(
    kind: AppKind,
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> ApiError {
    metrics::counter!(crate::metrics::CALLBACKS_REJECTED, "channel" => kind.as_str(), "reason" => code)
        .increment(1);
    ApiError::new(status, code, message)
}

fn required<'a>(
    kind: AppKind,
    v: &'a Option<String>,
    name: &'static str,
) -> Result<&'a str, ApiError> {
    v.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
        refuse(
            kind,
            StatusCode::BAD_REQUEST,
            "missing_parameter",
            format!("query parameter `{name}` is required"),
        )
    })
}

async fn app(
    state: &GatewayState,
    kind: AppKind,
    app_id: &str,
) -> Result<std::sync::Arc<App>, ApiError> {
    match state.registry.get(kind, app_id).await {
        Ok(Some(app)) => Ok(app),
        Ok(None) => Err(refuse(
            kind,
            StatusCode::NOT_FOUND,
            "unknown_app",
            format!("no {} app `{app_id}` is registered", kind.as_str()),
        )),
        Err(e) => Err(refuse(
            kind,
            StatusCode::SERVICE_UNAVAILABLE,
            "registry_unavailable",
            e.to_string(),
        )),
    }
}

fn check_timestamp(state: &GatewayState, kind: AppKind, ts: &str) -> Result<(), ApiError> {
    let ts: i64 = ts.parse().map_err(|_| {
        refuse(
            kind,
            StatusCode::BAD_REQUEST,
            "invalid_timestamp",
            "query parameter `timestamp` must be an integer",
        )
    })?;
    let window = state.cfg.callback.timestamp_window_secs;
    if window > 0 && (Utc::now().timestamp() - ts).unsigned_abs() > window {
        return Err(refuse(
            kind,
            StatusCode::FORBIDDEN,
            "stale_timestamp",
            format!(
                "query parameter `timestamp` is more than {window} s from now (replay protection)"
            ),
        ));
    }
    Ok(())
}

fn crypto_of(kind: AppKind, app: &App) -> Result<&wechat::crypto::MsgCrypto, ApiError> {
    app.crypto.as_ref().ok_or_else(|| {
        refuse(
            kind,
            StatusCode::BAD_REQUEST,
            "encryption_not_configured",
            format!(
                "app `{}` has no EncodingAESKey registered, but the message is encrypted",
                app.app_id
            ),
        )
    })
}

fn crypto_refusal(kind: AppKind, e: CryptoError) -> ApiError {
    match e {
        CryptoError::ValidateSignature => refuse(
            kind,
            StatusCode::FORBIDDEN,
            "bad_signature",
            "msg_signature does not match",
        ),
        CryptoError::ReceiveIdMismatch => refuse(
            kind,
            StatusCode::FORBIDDEN,
            "receive_id_mismatch",
            "the message was encrypted for another app than the URL names",
        ),
        other => refuse(
            kind,
            StatusCode::BAD_REQUEST,
            "decrypt_failed",
            format!("Encrypt cannot be decrypted ({}): {other}", other.code()),
        ),
    }
}

async fn verify_url(
    state: web::Data<GatewayState>,
    path: web::Path<String>,
    q: web::Query<CallbackQuery>,
    kind: AppKind,
) -> Result<HttpResponse, ApiError> {
    let app = app(&state, kind, &path).await?;
    let timestamp = required(kind, &q.timestamp, "timestamp")?;
    let nonce = required(kind, &q.nonce, "nonce")?;
    let echostr = required(kind, &q.echostr, "echostr")?;
    check_timestamp(&state, kind, timestamp)?;
    let answer = match kind {
        AppKind::Oa | AppKind::Mp => {
            let signature = required(kind, &q.signature, "signature")?;
            if !wechat::signature::verify_signature(app.token.expose(), timestamp, nonce, signature)
            {
                return Err(refuse(
                    kind,
                    StatusCode::FORBIDDEN,
                    "bad_signature",
                    "signature does not match",
                ));
            }
            echostr.to_string()
        }
        // An agent app takes no callbacks here (no route names it); WeCom's shape regardless.
        AppKind::Wecom | AppKind::WecomAgent => {
            let msg_signature = required(kind, &q.msg_signature, "msg_signature")?;
            crypto_of(kind, &app)?
                .decrypt_echostr(msg_signature, timestamp, nonce, echostr)
                .map_err(|e| crypto_refusal(kind, e))?
        }
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(answer))
}

fn looks_like_json(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Verifies and decrypts an encrypted body; returns the inner message.
fn open_encrypted(
    kind: AppKind,
    app: &App,
    q: &CallbackQuery,
    body: &[u8],
    json: bool,
) -> Result<String, ApiError> {
    let encrypt = if json {
        codec::parse_outer_json(body)
    } else {
        codec::parse_outer_xml(body)
    }
    .map_err(|e| {
        refuse(
            kind,
            StatusCode::BAD_REQUEST,
            "malformed_body",
            format!("body: {e}"),
        )
    })?
    .encrypt
    .ok_or_else(|| {
        refuse(
            kind,
            StatusCode::BAD_REQUEST,
            "malformed_body",
            "body: element `Encrypt` is missing",
        )
    })?;
    let msg_signature = required(kind, &q.msg_signature, "msg_signature")?;
    let timestamp = required(kind, &q.timestamp, "timestamp")?;
    let nonce = required(kind, &q.nonce, "nonce")?;
    crypto_of(kind, app)?
        .verify_and_decrypt(msg_signature, timestamp, nonce, &encrypt)
        .map_err(|e| crypto_refusal(kind, e))
}

async fn receive(
    state: web::Data<GatewayState>,
    path: web::Path<String>,
    q: web::Query<CallbackQuery>,
    rid: web::ReqData<RequestId>,
    body: web::Bytes,
    kind: AppKind,
) -> Result<HttpResponse, ApiError> {
    let app = app(&state, kind, &path).await?;
    let timestamp = required(kind, &q.timestamp, "timestamp")?;
    let nonce = required(kind, &q.nonce, "nonce")?;
    check_timestamp(&state, kind, timestamp)?;
    let json = kind == AppKind::Mp && looks_like_json(&body);
    let inner: Cow<'_, str> = match kind {
        AppKind::Oa | AppKind::Mp => {
            // OA and mini-program pushes carry the plain signature in every mode.
            let signature = required(kind, &q.signature, "signature")?;
            if !wechat::signature::verify_signature(app.token.expose(), timestamp, nonce, signature)
            {
                return Err(refuse(
                    kind,
                    StatusCode::FORBIDDEN,
                    "bad_signature",
                    "signature does not match",
                ));
            }
            if q.encrypt_type.as_deref() == Some("aes") {
                Cow::Owned(open_encrypted(kind, &app, &q, &body, json)?)
            } else {
                Cow::Borrowed(std::str::from_utf8(&body).map_err(|_| {
                    refuse(
                        kind,
                        StatusCode::BAD_REQUEST,
                        "malformed_body",
                        "body: not UTF-8",
                    )
                })?)
            }
        }
        AppKind::Wecom | AppKind::WecomAgent => {
            Cow::Owned(open_encrypted(kind, &app, &q, &body, false)?)
        }
    };
    let parsed = match kind {
        AppKind::Oa => codec::parse_oa(&inner),
        AppKind::Wecom | AppKind::WecomAgent => codec::parse_wecom(&inner),
        AppKind::Mp if json => codec::parse_mp_json(&inner),
        AppKind::Mp => codec::parse_mp_xml(&inner),
    };
    let event: ChannelEvent = parsed.map_err(|e| {
        refuse(
            kind,
            StatusCode::BAD_REQUEST,
            "malformed_body",
            format!("message: {e}"),
        )
    })?;
    let event_type = event.event_type();
    let env = Envelope::builder(
        event_type.clone(),
        &app.tenant_id,
        serde_json::json!(CallbackReceived {
            app_id: app.app_id.clone(),
            event: event.clone(),
        }),
    )
    .occurred_at(event.occurred_at())
    .dedupe_key(format!("{}|{}", app.app_id, event.dedupe_key()))
    .trace_id(rid.0.clone())
    .build();
    let outcome = state.publisher.publish_once(&env, kind.as_str()).await.map_err(|e| {
        tracing::warn!(error = %e, channel = kind.as_str(), "Callback not confirmed by the broker; answering 503");
        refuse(kind, StatusCode::SERVICE_UNAVAILABLE, "not_durable", format!("event was not stored, retry: {e}"))
    })?;
    let label = match outcome {
        Published::Now => "published",
        Published::Before => "duplicate",
    };
    metrics::counter!(
        crate::metrics::CALLBACKS,
        "channel" => kind.as_str(),
        "type" => event_type,
        "outcome" => label
    )
    .increment(1);
    Ok(match kind {
        // An empty 200 stops WeCom's retries; OA and MP expect `success` (or empty).
        AppKind::Wecom => HttpResponse::Ok().finish(),
        _ => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("success"),
    })
}
