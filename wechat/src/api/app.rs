//! Who an API call is made for, and where its access token comes from.
//!
//! - [`AppRef`] names an app without its secret (`oa:wx…`, `mp:wx…`, `wecom:ww…:contact`): all a
//!   service that never holds a secret knows.
//! - [`AppCredentials`] is an [`AppRef`] plus the secret: what the owner of the app registry (the
//!   gateway, the token keeper) hands to the client.
//! - [`TokenSource`] gives tokens for an [`AppRef`] without the secret being anywhere near the
//!   caller (e.g. [`super::KeeperTokenSource`], which asks the gateway's internal token endpoint).
//! - [`Auth`] is what every token-bearing endpoint method takes: credentials (the client keeps
//!   the token in the shared cache itself) or an [`AppRef`] with a [`TokenSource`]. Both go
//!   through the same request code and the same refresh-and-retry-once on a rejected token.

use async_trait::async_trait;

use super::{AccessToken, ApiError, Secret};

/// Which WeChat product an app belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppKind {
    /// Official Account (公众号).
    OfficialAccount,
    /// Mini-program (小程序).
    MiniProgram,
    /// WeCom (企业微信) app or customer-contact secret.
    WeCom,
}

impl AppKind {
    /// Short name used in cache keys, messages and the token endpoint: `oa`, `mp`, `wecom`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppKind::OfficialAccount => "oa",
            AppKind::MiniProgram => "mp",
            AppKind::WeCom => "wecom",
        }
    }

    /// The kind named `oa`, `mp` or `wecom`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "oa" => Some(AppKind::OfficialAccount),
            "mp" => Some(AppKind::MiniProgram),
            "wecom" => Some(AppKind::WeCom),
            _ => None,
        }
    }
}

/// Label of the WeCom customer-contact secret (the one that reads external contacts and writes
/// corp tags): the secret the app registry keeps for a WeCom corp.
pub const WECOM_CONTACT_AGENT: &str = "contact";

/// An app named without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppRef {
    kind: AppKind,
    id: String,
    agent: Option<String>,
}

impl AppRef {
    /// An Official Account by appid.
    pub fn official_account(appid: impl Into<String>) -> Self {
        AppRef {
            kind: AppKind::OfficialAccount,
            id: appid.into(),
            agent: None,
        }
    }

    /// A mini-program by appid.
    pub fn mini_program(appid: impl Into<String>) -> Self {
        AppRef {
            kind: AppKind::MiniProgram,
            id: appid.into(),
            agent: None,
        }
    }

    /// One secret of a WeCom corp: the corpid and the label of the secret (the agent id of a
    /// self-built app, or [`WECOM_CONTACT_AGENT`]). WeCom issues one token per secret.
    pub fn wecom(corpid: impl Into<String>, agent: impl Into<String>) -> Self {
        AppRef {
            kind: AppKind::WeCom,
            id: corpid.into(),
            agent: Some(agent.into()),
        }
    }

    /// The customer-contact secret of a WeCom corp.
    pub fn wecom_contact(corpid: impl Into<String>) -> Self {
        Self::wecom(corpid, WECOM_CONTACT_AGENT)
    }

    /// The kind of app.
    pub fn kind(&self) -> AppKind {
        self.kind
    }

    /// The appid (OA, MP) or corpid (WeCom).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The WeCom secret label, `None` for OA and MP.
    pub fn agent(&self) -> Option<&str> {
        self.agent.as_deref()
    }

    /// `oa:wx…`, `mp:wx…` or `wecom:ww…:agent`: names the app in messages and cache keys.
    pub fn label(&self) -> String {
        match &self.agent {
            Some(agent) => format!("{}:{}:{agent}", self.kind.as_str(), self.id),
            None => format!("{}:{}", self.kind.as_str(), self.id),
        }
    }

    pub(crate) fn require(&self, kind: AppKind) -> Result<(), ApiError> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(ApiError::WrongAppKind {
                app: self.label(),
                expected: kind.as_str(),
            })
        }
    }
}

/// The identity and secret of one app, handed in by the owner of the app registry.
///
/// `Debug` shows the ids and `Secret(***)`, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredentials {
    app: AppRef,
    secret: Secret,
}

impl AppCredentials {
    /// An Official Account: its appid and AppSecret.
    pub fn official_account(appid: impl Into<String>, secret: Secret) -> Self {
        Self::new(AppRef::official_account(appid), secret)
    }

    /// A mini-program: its appid and AppSecret.
    pub fn mini_program(appid: impl Into<String>, secret: Secret) -> Self {
        Self::new(AppRef::mini_program(appid), secret)
    }

    /// A WeCom secret: the corpid, a label naming which secret it is (the agent id of a
    /// self-built app, or [`WECOM_CONTACT_AGENT`] for the customer-contact secret) and the
    /// secret. WeCom issues one token per secret, so the label keeps their cache entries apart.
    pub fn wecom(corpid: impl Into<String>, agent: impl Into<String>, secret: Secret) -> Self {
        Self::new(AppRef::wecom(corpid, agent), secret)
    }

    /// The app `app` with its secret.
    pub fn new(app: AppRef, secret: Secret) -> Self {
        AppCredentials { app, secret }
    }

    /// The app, without the secret.
    pub fn app(&self) -> &AppRef {
        &self.app
    }

    /// The kind of app.
    pub fn kind(&self) -> AppKind {
        self.app.kind
    }

    /// The appid (OA, MP) or corpid (WeCom).
    pub fn id(&self) -> &str {
        &self.app.id
    }

    /// The WeCom secret label, `None` for OA and MP.
    pub fn agent(&self) -> Option<&str> {
        self.app.agent()
    }

    /// The secret; use it only to send it to WeChat.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// `oa:wx…`, `mp:wx…` or `wecom:ww…:agent`: names the app in messages and cache keys.
    pub fn label(&self) -> String {
        self.app.label()
    }

    pub(crate) fn require(&self, kind: AppKind) -> Result<(), ApiError> {
        self.app.require(kind)
    }
}

/// Where a caller without the secret gets access tokens.
///
/// Implementations must never hand out a token they know WeChat rejected, and must coordinate
/// refreshes with the one token keeper (WeChat invalidates the previous token on every fetch).
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// A token for `app`: a held one, or a fresh one.
    async fn token(&self, app: &AppRef) -> Result<AccessToken, ApiError>;

    /// WeChat rejected `rejected` (40001 / 40014 / 42001): a token other than it, refreshed by
    /// the keeper if `rejected` is still the current one.
    async fn refresh(&self, app: &AppRef, rejected: &AccessToken) -> Result<AccessToken, ApiError>;
}

/// How a token-bearing call is authorised: see the module documentation.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    /// With the secret: the client keeps the token in its shared cache (the token keeper).
    Credentials(&'a AppCredentials),
    /// Without the secret: tokens come from `source`.
    Delegated {
        /// The app.
        app: &'a AppRef,
        /// Where its tokens come from.
        source: &'a dyn TokenSource,
    },
}

impl<'a> Auth<'a> {
    /// Tokens for `app` from `source`.
    pub fn delegated(app: &'a AppRef, source: &'a dyn TokenSource) -> Self {
        Auth::Delegated { app, source }
    }

    /// The app the call is for.
    pub fn app(&self) -> &'a AppRef {
        match self {
            Auth::Credentials(c) => c.app(),
            Auth::Delegated { app, .. } => app,
        }
    }

    /// The secret, when the caller holds it (to redact it from messages).
    pub(crate) fn secret(&self) -> Option<&'a str> {
        match self {
            Auth::Credentials(c) => Some(c.secret().expose()),
            Auth::Delegated { .. } => None,
        }
    }

    pub(crate) fn require(&self, kind: AppKind) -> Result<(), ApiError> {
        self.app().require(kind)
    }
}

impl std::fmt::Debug for Auth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Credentials(c) => f.debug_tuple("Credentials").field(c).finish(),
            Auth::Delegated { app, .. } => f.debug_struct("Delegated").field("app", app).finish(),
        }
    }
}

impl<'a> From<&'a AppCredentials> for Auth<'a> {
    fn from(c: &'a AppCredentials) -> Self {
        Auth::Credentials(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_kinds() {
        assert_eq!(AppRef::official_account("wx1").label(), "oa:wx1");
        assert_eq!(AppRef::mini_program("wx2").label(), "mp:wx2");
        assert_eq!(AppRef::wecom_contact("ww1").label(), "wecom:ww1:contact");
        for kind in [
            AppKind::OfficialAccount,
            AppKind::MiniProgram,
            AppKind::WeCom,
        ] {
            assert_eq!(AppKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AppKind::parse("OA"), None);
        let e = AppRef::official_account("wx1")
            .require(AppKind::WeCom)
            .unwrap_err();
        assert!(matches!(e, ApiError::WrongAppKind { .. }), "{e}");
    }

    #[test]
    fn auth_debug_hides_the_secret() {
        let creds = AppCredentials::official_account("wx1", Secret::new("s3cr3t-value"));
        let shown = format!("{:?}", Auth::from(&creds));
        assert!(
            !shown.contains("s3cr3t-value") && shown.contains("wx1"),
            "{shown}"
        );
    }
}
