//! Request ids: taken from `X-Request-Id` when it is a sane token, generated otherwise, echoed in
//! the response, attached to the request's tracing span and usable as the trace id of events the
//! request publishes. Also records per-route request metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Instrument;

/// Header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the current request (in request extensions; extract with `web::ReqData<RequestId>`).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// A bounded metrics label for a path: its first two segments (`/wechat/oa`, `/v1/profiles`), so
/// ids in paths never become label values; `unmatched` for 404s. Cheaper than re-matching the
/// route table for every request.
fn route_label(path: &str, not_found: bool) -> String {
    if not_found {
        return "unmatched".to_string();
    }
    let mut end = path.len();
    let mut seen = 0;
    for (i, b) in path.bytes().enumerate().skip(1) {
        if b == b'/' {
            seen += 1;
            if seen == 2 {
                end = i;
                break;
            }
        }
    }
    path[..end].to_string()
}

pub(crate) async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span =
        tracing::info_span!("http", request_id = %id, method = %req.method(), path = %req.path());
    let started = Instant::now();
    let path = req.path().to_string();
    let mut res = next.call(req).instrument(span).await?;
    let status_code = res.status();
    let status = status_code.as_u16().to_string();
    let route = route_label(&path, status_code == actix_web::http::StatusCode::NOT_FOUND);
    metrics::counter!(crate::metrics::HTTP_REQUESTS, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(crate::metrics::HTTP_REQUEST_SECONDS, "route" => route)
        .record(started.elapsed().as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(route_label("/wechat/oa/wx123", false), "/wechat/oa");
        assert_eq!(
            route_label("/v1/profiles/0193/timeline", false),
            "/v1/profiles"
        );
        assert_eq!(route_label("/readyz", false), "/readyz");
        assert_eq!(route_label("/whatever/x", true), "unmatched");
    }
}
