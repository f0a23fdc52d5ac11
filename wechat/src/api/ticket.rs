//! WeCom JS-SDK tickets: the corp ticket `wx.config` is signed with
//! (`GET /cgi-bin/get_jsapi_ticket`) and the app ticket `wx.agentConfig` is signed with
//! (`GET /cgi-bin/ticket/get?type=agent_config`), both fetched with the app's access token and
//! valid 7200 s.
//!
//! WeCom caps ticket fetches hard (per hour, per corp and per app), so the keeper holds them the
//! way it holds tokens ([`super::token`]): in the shared cache until shortly before expiry,
//! fetched by one caller at a time across every process, a failed fetch remembered for a moment.
//! A fetch answered 40001 / 42001 drops the access token it used (only while it is still the
//! cached one), fetches a fresh token and retries once, like every other call. A ticket the
//! JS-SDK refused can be dropped with [`ApiClient::invalidate_ticket`] — only while it is still
//! the cached one, so a burst of reports refetches once.
//!
//! The page signature itself is [`crate::signature::jsapi_signature`].

use serde::Deserialize;

use super::token::Kept;
use super::{ApiClient, ApiError, AppCredentials, AppKind, Auth, Family, Request, Secret};

/// Which JS-SDK ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketKind {
    /// The corp ticket (`get_jsapi_ticket`): signs `wx.config`.
    Corp,
    /// The app ticket (`ticket/get?type=agent_config`): signs `wx.agentConfig`, which the
    /// sidebar needs for `getCurExternalContact`.
    Agent,
}

impl TicketKind {
    /// Both kinds.
    pub const ALL: [TicketKind; 2] = [TicketKind::Corp, TicketKind::Agent];

    /// `jsapi` or `agent_config`: names the kind in cache keys, counters and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::Corp => "jsapi",
            TicketKind::Agent => "agent_config",
        }
    }

    /// The kind named `jsapi` or `agent_config`.
    pub fn parse(name: &str) -> Option<Self> {
        TicketKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The API path that issues it.
    pub fn path(self) -> &'static str {
        match self {
            TicketKind::Corp => "/cgi-bin/get_jsapi_ticket",
            TicketKind::Agent => "/cgi-bin/ticket/get",
        }
    }
}

/// A ticket as WeCom answers it. `Debug` hides the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JsapiTicket {
    /// The ticket; use it only to sign pages.
    pub ticket: Secret,
    /// Seconds it stays valid (7200).
    pub expires_in: u64,
}

/// A ticket as the keeper holds it. `Debug` hides the ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptTicket {
    /// The ticket.
    pub ticket: Secret,
    /// Unix seconds after which the keeper no longer hands it out (WeCom's expiry minus the
    /// safety margin).
    pub expires_at: i64,
}

impl ApiClient {
    /// One ticket request to WeCom, not cached: `GET /cgi-bin/get_jsapi_ticket` or
    /// `GET /cgi-bin/ticket/get?type=agent_config` with the token of `app` (a WeCom app secret,
    /// the one whose agentid the page passes to `wx.agentConfig`). Prefer
    /// [`kept_ticket`](Self::kept_ticket): fetches are capped per hour.
    pub async fn wecom_jsapi_ticket<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        kind: TicketKind,
    ) -> Result<JsapiTicket, ApiError> {
        let app = app.into();
        app.require(AppKind::WeCom)?;
        let mut req = Request::get(Family::WeCom, kind.path());
        if kind == TicketKind::Agent {
            req = req.query("type", "agent_config");
        }
        let ticket: JsapiTicket = self.call(app, req).await?;
        if ticket.ticket.expose().is_empty() {
            return Err(ApiError::InvalidResponse {
                endpoint: kind.path().to_owned(),
                status: None,
                message: "empty ticket".to_owned(),
            });
        }
        Ok(ticket)
    }

    /// The cache key of an app's ticket (before the cache's deployment prefix).
    pub fn ticket_cache_key(&self, app: &AppCredentials, kind: TicketKind) -> String {
        format!("{}:ticket:{}", self.token_cache_key(app), kind.as_str())
    }

    /// The app's ticket of `kind` with the moment it leaves the cache: from the shared cache,
    /// or fetched by exactly one caller across every process while the others wait.
    pub async fn kept_ticket(
        &self,
        app: &AppCredentials,
        kind: TicketKind,
    ) -> Result<KeptTicket, ApiError> {
        app.require(AppKind::WeCom)?;
        let key = self.ticket_cache_key(app, kind);
        let kept = self.kept(app, &key, Kept::Ticket(kind)).await?;
        Ok(KeptTicket {
            ticket: Secret::new(kept.value),
            expires_at: kept.expires_at,
        })
    }

    /// Removes the cached ticket only while it is still `rejected`; `true` when removed. Call
    /// it when the JS-SDK refused a signature made with it (`invalid signature`) although the
    /// page URL was right — and limit how often a client can make you call it, since every
    /// removal costs a capped fetch.
    pub async fn invalidate_ticket(
        &self,
        app: &AppCredentials,
        kind: TicketKind,
        rejected: &str,
    ) -> Result<bool, ApiError> {
        let key = self.ticket_cache_key(app, kind);
        self.drop_if_current(&key, rejected).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_hide_the_ticket() {
        for kind in TicketKind::ALL {
            assert_eq!(TicketKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(TicketKind::parse("wx_card"), None);
        let t: JsapiTicket = serde_json::from_str(
            r#"{"errcode":0,"errmsg":"ok","ticket":"bxLdikRXVbTPdHSM05e5u5sUoXNKd8","expires_in":7200}"#,
        )
        .expect("decodes");
        assert_eq!(t.expires_in, 7200);
        assert!(!format!("{t:?}").contains("bxLdikRX"));
    }
}
