//! Callbacks sent on request over HTTP, for scripts that drive a gateway from outside the
//! process (the Rust side has [`crate::FakeHandle::send_wecom`]):
//!
//! `GET|POST /fake/send/wecom-add?gateway=&userid=&external_userid=[&state=]` — the corp's rep
//! `userid` added the customer `external_userid` (`add_external_contact`, with the contact-me
//! `state` when given), signed and encrypted with the corp's callback key and posted to
//! `{gateway}/wechat/wecom/{corpid}`. Answers `{status, body}`: what the gateway answered. 400
//! when a parameter is missing or `gateway` is not an http(s) URL, 502 when the gateway could
//! not be reached.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

use super::{json_response, Shared};
use crate::callbacks::{self, CallbackBuilder};

fn bad_request(message: &str) -> HttpResponse {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "errcode": 400, "errmsg": message }),
    )
}

impl Shared {
    /// `/fake/send/{what}`: builds, signs and posts a callback to the named gateway.
    pub(super) async fn fake_send(&self, what: &str, q: &HashMap<String, String>) -> HttpResponse {
        let p = |k: &str| {
            q.get(k)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let Some(gateway) = p("gateway") else {
            return bad_request("gateway is required (the gateway's base URL)");
        };
        if !(gateway.starts_with("http://") || gateway.starts_with("https://"))
            || reqwest::Url::parse(&gateway).is_err()
        {
            return bad_request("gateway must be an http(s) URL");
        }
        let app = &self.apps.wecom;
        let xml = match what {
            "wecom-add" => {
                let (Some(userid), Some(external_userid)) = (p("userid"), p("external_userid"))
                else {
                    return bad_request("userid and external_userid are required");
                };
                CallbackBuilder::new(app).add_external_contact(
                    &userid,
                    &external_userid,
                    p("state").as_deref(),
                )
            }
            _ => {
                return json_response(
                    StatusCode::NOT_FOUND,
                    &json!({ "errcode": 404, "errmsg": "not found" }),
                )
            }
        };
        let sent = match callbacks::prepare_wecom(&gateway, app, &xml) {
            Ok(cb) => callbacks::post(&self.http, &cb).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(r) => json_response(
                StatusCode::OK,
                &json!({ "status": r.status, "body": r.body }),
            ),
            Err(e) => json_response(
                StatusCode::BAD_GATEWAY,
                &json!({ "errcode": 502, "errmsg": e.to_string() }),
            ),
        }
    }
}
