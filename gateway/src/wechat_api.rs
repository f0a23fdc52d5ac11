//! The gateway's calls to WeChat (mini-program login and phone, app messages to reps) and its
//! role as the one access token keeper (tokens handed to services through the internal token
//! endpoint), over the
//! `wechat` API client with access tokens kept in the shared cache. Maps WeChat's answers to what
//! the SDK caller should hear: a bad code is the caller's problem (4xx), a busy WeChat is
//! retryable (503).

use std::sync::Arc;

use platform::cache::Cache;
use platform::config::Secret;
use wechat::api::{
    ApiBaseUrls, ApiClient, ApiError, AppCredentials, AppMessage, AppRef, ClientOptions, KeptToken,
    SendOutcome,
};

use crate::config::WechatApiConfig;
use crate::registry::{App, AppKind};

/// A mini-program login.
#[derive(Debug, Clone)]
pub struct MpLogin {
    pub openid: String,
    pub unionid: Option<String>,
    pub session_key: Secret,
}

/// A verified phone number.
#[derive(Debug, Clone)]
pub struct MpPhone {
    /// E.164 (`+8613800138000`).
    pub e164: String,
    /// Without `+`.
    pub country_code: String,
}

/// What went wrong calling WeChat, by who must act.
#[derive(Debug, thiserror::Error)]
pub enum WechatCallError {
    /// The code is invalid, used or expired: the client must get a new one.
    #[error("{0}")]
    InvalidCode(String),
    /// WeChat's rate limit for this user or app.
    #[error("{0}")]
    RateLimited(String),
    /// The app's registration is wrong (secret, appid): an operator must fix it.
    #[error("{0}")]
    Misconfigured(String),
    /// WeChat or the network is unavailable: retry later.
    #[error("{0}")]
    Unavailable(String),
}

impl From<ApiError> for WechatCallError {
    fn from(e: ApiError) -> Self {
        let text = e.to_string();
        match e.errcode() {
            Some(40029 | 40163 | 40226 | 41008) => WechatCallError::InvalidCode(text),
            Some(45011 | 45009) => WechatCallError::RateLimited(text),
            Some(40013 | 40125 | 40164 | 41002 | 41004 | 48001 | 61024) => {
                WechatCallError::Misconfigured(text)
            }
            _ if e.is_transient() => WechatCallError::Unavailable(text),
            Some(_) => WechatCallError::InvalidCode(text),
            None => match e {
                ApiError::WrongAppKind { .. } => WechatCallError::Misconfigured(text),
                _ => WechatCallError::Unavailable(text),
            },
        }
    }
}

/// WeChat calls the gateway makes.
#[derive(Clone)]
pub struct WechatApi {
    client: ApiClient,
}

/// Builds an E.164 number from WeChat's country code and national number.
pub fn e164(country_code: &str, pure_number: &str) -> Option<String> {
    let cc = country_code.trim().trim_start_matches('+');
    let n = pure_number.trim();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(cc) || !digits(n) || cc.len() > 3 || cc.len() + n.len() > 15 {
        return None;
    }
    Some(format!("+{cc}{n}"))
}

impl WechatApi {
    pub fn new(cfg: &WechatApiConfig, cache: Arc<dyn Cache>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let options = ClientOptions {
            base_urls: ApiBaseUrls {
                weixin: cfg.oa_base_url.trim_end_matches('/').to_string(),
                wecom: cfg.wecom_base_url.trim_end_matches('/').to_string(),
            },
            open_base_url: cfg.open_base_url.trim_end_matches('/').to_string(),
            ..ClientOptions::default()
        };
        Ok(WechatApi {
            client: ApiClient::with_options(cache, http, options),
        })
    }

    /// The app as the API client names it: a WeCom corp by its customer-contact secret, an
    /// agent app by its AgentID (WeCom issues one token per secret; the label keeps their cached
    /// tokens apart).
    pub fn app_ref(app: &App) -> AppRef {
        match app.kind {
            AppKind::Oa => AppRef::official_account(app.app_id.clone()),
            AppKind::Mp => AppRef::mini_program(app.app_id.clone()),
            AppKind::Wecom => AppRef::wecom_contact(app.app_id.clone()),
            AppKind::WecomAgent => AppRef::wecom(
                app.app_id.clone(),
                app.agent_id.unwrap_or_default().to_string(),
            ),
        }
    }

    /// The registered app with its secret, or `None` when it has none.
    pub fn credentials(app: &App) -> Option<AppCredentials> {
        let secret = app.secret.clone()?;
        Some(AppCredentials::new(Self::app_ref(app), secret))
    }

    fn require_credentials(app: &App) -> Result<AppCredentials, WechatCallError> {
        Self::credentials(app).ok_or_else(|| {
            WechatCallError::Misconfigured(format!("app `{}` has no secret registered", app.app_id))
        })
    }

    /// The app's access token from the keeper with its expiry. With `rejected`, WeChat refused
    /// that token: it is dropped if it is still the cached one (never a newer token another
    /// caller stored) and a fresh one fetched, single-flight across every process.
    pub async fn kept_token(
        &self,
        credentials: &AppCredentials,
        rejected: Option<&str>,
    ) -> Result<KeptToken, ApiError> {
        if let Some(rejected) = rejected {
            self.client.invalidate_token(credentials, rejected).await?;
        }
        self.client.kept_token(credentials).await
    }

    /// WeCom's sign-in page for the corp's agent app, coming back to `redirect_uri`.
    pub fn oauth_url(
        &self,
        corp_id: &str,
        agent_id: i64,
        redirect_uri: &str,
        state: &str,
    ) -> String {
        self.client
            .wecom_oauth_url(corp_id, agent_id, redirect_uri, state)
    }

    /// Who signed in with `code` (`auth/getuserinfo` with the agent app's token).
    pub async fn oauth_user(
        &self,
        credentials: &AppCredentials,
        code: &str,
    ) -> Result<wechat::api::OAuthUser, ApiError> {
        self.client.wecom_oauth_user(credentials, code).await
    }

    /// A JS-SDK ticket of the agent app, from the keeper (one fetch for every replica).
    pub async fn jsapi_ticket(
        &self,
        credentials: &AppCredentials,
        kind: wechat::api::TicketKind,
    ) -> Result<Secret, ApiError> {
        Ok(self.client.kept_ticket(credentials, kind).await?.ticket)
    }

    /// `message/send` from a WeCom agent app, with its token from the keeper.
    pub async fn send_app_message(
        &self,
        credentials: &AppCredentials,
        message: &AppMessage,
    ) -> Result<SendOutcome, ApiError> {
        self.client.wecom_send_message(credentials, message).await
    }

    /// Makes a channel code at WeChat: `(wechat_ref, image_url)` — a contact-me code's
    /// `config_id` and QR image, or a QR code's ticket and `showqrcode` image.
    pub async fn create_channel_code(
        &self,
        credentials: &AppCredentials,
        code: &crate::domain::channel_code::WechatCode,
    ) -> Result<(String, String), ApiError> {
        use crate::domain::channel_code::WechatCode;
        match code {
            WechatCode::ContactWay(way) => {
                let a = self.client.wecom_add_contact_way(credentials, way).await?;
                Ok((a.config_id, a.qr_code))
            }
            WechatCode::QrCode {
                scene,
                expire_seconds,
            } => {
                let q = self
                    .client
                    .oa_create_qrcode(credentials, scene, *expire_seconds)
                    .await?;
                let image = q.image_url();
                Ok((q.ticket, image))
            }
        }
    }

    /// Tells WeChat a contact-me code's new reps, verification and remark.
    pub async fn update_contact_way(
        &self,
        credentials: &AppCredentials,
        config_id: &str,
        way: &wechat::api::ContactWay,
    ) -> Result<(), ApiError> {
        self.client
            .wecom_update_contact_way(credentials, config_id, way)
            .await
    }

    /// Stops a contact-me code (`del_contact_way`). WeChat has no way to stop a QR code: a
    /// retired one is only no longer attributed.
    pub async fn retire_contact_way(
        &self,
        credentials: &AppCredentials,
        config_id: &str,
    ) -> Result<(), ApiError> {
        self.client
            .wecom_del_contact_way(credentials, config_id)
            .await
    }

    /// `code2session` for a mini-program login code.
    pub async fn code2session(&self, app: &App, code: &str) -> Result<MpLogin, WechatCallError> {
        let s = self
            .client
            .mp_code_to_session(&Self::require_credentials(app)?, code)
            .await?;
        Ok(MpLogin {
            openid: s.openid,
            unionid: s.unionid.filter(|u| !u.is_empty()),
            session_key: s.session_key,
        })
    }

    /// The phone number behind a phone-button code.
    pub async fn phone_number(&self, app: &App, code: &str) -> Result<MpPhone, WechatCallError> {
        let info = self
            .client
            .mp_phone_number(&Self::require_credentials(app)?, code)
            .await?;
        let e164 = e164(&info.country_code, &info.pure_phone_number).ok_or_else(|| {
            WechatCallError::Unavailable(
                "WeChat returned a phone number that is not a number".into(),
            )
        })?;
        Ok(MpPhone {
            e164,
            country_code: info.country_code.trim_start_matches('+').to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::e164;

    #[test]
    fn builds_e164() {
        assert_eq!(e164("86", "13800138000").as_deref(), Some("+8613800138000"));
        assert_eq!(e164("+1", "4155550100").as_deref(), Some("+14155550100"));
        assert_eq!(e164("86", "138-0013"), None);
        assert_eq!(e164("", "1"), None);
    }
}
