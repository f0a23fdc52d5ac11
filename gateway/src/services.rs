//! Calls from the admin API to the services' internal APIs, each with a service credential for
//! the authenticated principal (tenant, actor, role), so the services scope and record by it.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use platform::context::Peers;
use platform::http::{Principal, ServiceKey, PRINCIPAL_HEADER};

use crate::access::AdminPrincipal;
use crate::config::ServiceUrls;

/// A service the admin API composes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Identity,
    Tagging,
    Scoring,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::Tagging => "tagging",
            Service::Scoring => "scoring",
        }
    }
}

/// A service's answer, passed on as it is.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: bytes_body::Bytes,
}

/// Re-exported body type (reqwest's).
pub mod bytes_body {
    pub use reqwest::Response;
    pub type Bytes = Vec<u8>;
}

/// Why a service could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the {0} service's address is not configured (gateway.services.{0}_url)")]
    NoAddress(&'static str),
    #[error("the {service} service did not answer: {reason}")]
    Unavailable {
        service: &'static str,
        reason: String,
    },
}

/// The client of the services.
#[derive(Clone)]
pub struct Services {
    http: reqwest::Client,
    key: ServiceKey,
    urls: ServiceUrls,
    peers: Peers,
}

impl Services {
    pub fn new(internal_key: &str, urls: ServiceUrls, peers: Peers) -> Self {
        Services {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            key: ServiceKey::derive(internal_key),
            urls,
            peers,
        }
    }

    fn base(&self, s: Service) -> Result<String, CallError> {
        let configured = match s {
            Service::Identity => &self.urls.identity_url,
            Service::Tagging => &self.urls.tagging_url,
            Service::Scoring => &self.urls.scoring_url,
        };
        if let Some(u) = configured.as_deref().filter(|u| !u.is_empty()) {
            return Ok(u.trim_end_matches('/').to_string());
        }
        let peers = self.peers.read().unwrap_or_else(|p| p.into_inner());
        match peers.get(s.name()) {
            Some(addr) if addr.ip().is_unspecified() => {
                Ok(format!("http://127.0.0.1:{}", addr.port()))
            }
            Some(addr) => Ok(format!("http://{addr}")),
            None => Err(CallError::NoAddress(s.name())),
        }
    }

    /// The credential header value for `p`.
    pub fn credential(&self, p: &AdminPrincipal) -> String {
        self.key
            .sign(&Principal::new(p.tenant_id.clone(), p.actor(), p.role))
    }

    /// Sends `method path_and_query` with an optional JSON body to `service` for `p`.
    pub async fn call(
        &self,
        service: Service,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
        p: &AdminPrincipal,
    ) -> Result<Answer, CallError> {
        self.send(
            service,
            method,
            path_and_query,
            body,
            self.credential(p),
            None,
        )
        .await
    }

    /// `GET path_and_query` of `service` for the system itself (`principal`'s actor is
    /// `system:<what>`), answered within `timeout`: `(status, body)`.
    pub async fn get_json_as(
        &self,
        service: Service,
        path_and_query: &str,
        principal: &Principal,
        timeout: Duration,
    ) -> Result<(StatusCode, serde_json::Value), CallError> {
        let a = self
            .send(
                service,
                Method::GET,
                path_and_query,
                None,
                self.key.sign(principal),
                Some(timeout),
            )
            .await?;
        Ok((
            a.status,
            serde_json::from_slice(&a.body).unwrap_or_default(),
        ))
    }

    async fn send(
        &self,
        service: Service,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
        credential: String,
        timeout: Option<Duration>,
    ) -> Result<Answer, CallError> {
        let url = format!("{}{path_and_query}", self.base(service)?);
        let method =
            reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut req = self
            .http
            .request(method, url)
            .header(PRINCIPAL_HEADER, credential);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let unavailable = |e: reqwest::Error| CallError::Unavailable {
            service: service.name(),
            reason: e.without_url().to_string(),
        };
        let r = req.send().await.map_err(unavailable)?;
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let content_type = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = r.bytes().await.map_err(unavailable)?.to_vec();
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }

    /// [`Self::call`] for a JSON answer: `(status, body)`.
    pub async fn json(
        &self,
        service: Service,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
        p: &AdminPrincipal,
    ) -> Result<(StatusCode, serde_json::Value), CallError> {
        let a = self.call(service, method, path_and_query, body, p).await?;
        Ok((
            a.status,
            serde_json::from_slice(&a.body).unwrap_or_default(),
        ))
    }
}
