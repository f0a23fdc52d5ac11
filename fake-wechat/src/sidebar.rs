//! [`FakeHandle`]'s side of the sales-rep sidebar: issuing OAuth codes, steering and reading
//! the JS-SDK tickets, and the app messages sent. The HTTP side is in `server::agent` and
//! `server::messages`.

use std::time::Duration;

use super::{FakeApp, FakeHandle, FakeMessage, FakeUser};
use crate::server::{ticket_key, OAuthSubject};
use wechat::api::TicketKind;

impl FakeHandle {
    // ---- OAuth -------------------------------------------------------------------------------

    /// A single-use `auth/getuserinfo` code signing in member `userid` (any userid: the HTTP
    /// endpoints accept only the population's reps).
    pub fn issue_oauth_code(&self, userid: &str) -> String {
        self.shared
            .issue_oauth_code(OAuthSubject::Member(userid.to_owned()))
    }

    /// A single-use code signing in `user` as someone outside the corp (`openid` and their
    /// `external_userid`).
    pub fn issue_customer_oauth_code(&self, user: &FakeUser) -> String {
        self.shared
            .issue_oauth_code(OAuthSubject::Customer(user.index))
    }

    /// Lifetime of OAuth codes issued from now on and of those not yet used (default 5 min).
    pub fn set_oauth_code_ttl(&self, ttl: Duration) {
        self.shared.lock().sidebar.oauth_code_ttl = ttl;
    }

    /// Who the authorize page signs in when its query names nobody; `None`: the first rep.
    pub fn set_oauth_default_userid(&self, userid: Option<&str>) {
        self.shared.lock().sidebar.default_userid = userid.map(str::to_owned);
    }

    // ---- JS-SDK tickets ----------------------------------------------------------------------

    /// Lifetime (and `expires_in`, rounded up to whole seconds) of tickets issued from now on.
    pub fn set_ticket_lifetime(&self, lifetime: Duration) {
        self.shared.lock().sidebar.ticket_lifetime = lifetime;
    }

    /// Tickets of `kind` issued to `app` (since the last
    /// [`reset_counters`](Self::reset_counters)).
    pub fn ticket_fetches(&self, app: &FakeApp, kind: TicketKind) -> u64 {
        let st = self.shared.lock();
        st.sidebar
            .ticket_fetches
            .get(&ticket_key(app, kind))
            .copied()
            .unwrap_or(0)
    }

    /// The ticket of `kind` most recently issued to `app`.
    pub fn current_ticket(&self, app: &FakeApp, kind: TicketKind) -> Option<String> {
        self.shared.current_ticket(app, kind)
    }

    /// Makes every ticket issued so far to `app` invalid, as after fetches elsewhere.
    pub fn invalidate_tickets(&self, app: &FakeApp) {
        self.shared.revoke_tickets(app);
    }

    /// The kind of the live ticket that signed `url` (fragment ignored) with `noncestr` and
    /// `timestamp` into `signature`, as the JS-SDK checks `wx.config` / `wx.agentConfig`;
    /// `None` when no live ticket did.
    pub fn verify_jssdk_signature(
        &self,
        url: &str,
        noncestr: &str,
        timestamp: &str,
        signature: &str,
    ) -> Option<TicketKind> {
        self.shared
            .verify_jssdk(url, noncestr, timestamp, signature)
    }

    // ---- app messages ------------------------------------------------------------------------

    /// Every `message/send` request so far, in arrival order, with its answer (injected failures
    /// included; not cleared by [`reset_counters`](Self::reset_counters)).
    pub fn messages(&self) -> Vec<FakeMessage> {
        self.shared.lock().sidebar.messages.clone()
    }
}
