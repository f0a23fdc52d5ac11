//! Mini-program APIs: login (`/sns/jscode2session`, authenticated by appid + secret, no token)
//! and the phone number of a `getPhoneNumber` code (`/wxa/business/getuserphonenumber`).
//!
//! Both codes are single-use; the phone code lives 5 minutes. `jscode2session` is limited to 100
//! calls per user per minute (45011).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use super::{ApiClient, ApiError, AppCredentials, AppKind, Auth, Family, Request, Secret};

/// Answer of `jscode2session`. `Debug` hides the session key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MpSession {
    /// The user's openid under this mini-program.
    pub openid: String,
    /// The session key (base64 of 16 bytes): decrypts `encryptedData`, signs `rawData`.
    pub session_key: Secret,
    /// Present only when the UnionID conditions hold.
    #[serde(default)]
    pub unionid: Option<String>,
}

/// Watermark of a phone answer: which app and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneWatermark {
    /// The app the phone number was issued for.
    pub appid: String,
    /// Unix time.
    #[serde(default)]
    pub timestamp: i64,
}

/// The `phone_info` of `getuserphonenumber`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneInfo {
    /// With the country code for numbers outside mainland China.
    #[serde(rename = "phoneNumber")]
    pub phone_number: String,
    /// Without the country code.
    #[serde(rename = "purePhoneNumber")]
    pub pure_phone_number: String,
    /// Country code, e.g. `86` (WeChat sends a string or a number).
    #[serde(rename = "countryCode", deserialize_with = "string_or_number")]
    pub country_code: String,
    /// Which app the number was issued for.
    pub watermark: PhoneWatermark,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        N(i64),
    }
    Ok(match Either::deserialize(d)? {
        Either::S(s) => s,
        Either::N(n) => n.to_string(),
    })
}

#[derive(Deserialize)]
struct PhoneAnswer {
    phone_info: PhoneInfo,
}

impl ApiClient {
    /// `GET /sns/jscode2session`: exchanges a `wx.login` code for the openid, session key and
    /// (maybe) unionid. Authenticated by appid + secret; no access token.
    pub async fn mp_code_to_session(
        &self,
        app: &AppCredentials,
        js_code: &str,
    ) -> Result<MpSession, ApiError> {
        app.require(AppKind::MiniProgram)?;
        let secret = app.secret().expose();
        let req = Request::get(Family::Weixin, "/sns/jscode2session")
            .query("appid", app.id())
            .query("secret", secret)
            .query("js_code", js_code)
            .query("grant_type", "authorization_code");
        self.send(&req, None, &[secret]).await
    }

    /// `POST /wxa/business/getuserphonenumber`: the phone number behind a `getPhoneNumber`
    /// code. An answer watermarked for another app is refused.
    pub async fn mp_phone_number<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        code: &str,
    ) -> Result<PhoneInfo, ApiError> {
        let app = app.into();
        app.require(AppKind::MiniProgram)?;
        let req = Request::post(
            Family::Weixin,
            "/wxa/business/getuserphonenumber",
            json!({ "code": code }),
        );
        let answer: PhoneAnswer = self.call(app, req).await?;
        let appid = app.app().id();
        if answer.phone_info.watermark.appid != appid {
            return Err(ApiError::InvalidResponse {
                endpoint: "/wxa/business/getuserphonenumber".to_owned(),
                status: None,
                message: format!(
                    "phone number watermarked for {}, not {}",
                    answer.phone_info.watermark.appid, appid
                ),
            });
        }
        Ok(answer.phone_info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_info_accepts_both_country_code_types() {
        for cc in [r#""86""#, "86"] {
            let info: PhoneInfo = serde_json::from_str(&format!(
                r#"{{"phoneNumber":"13800000000","purePhoneNumber":"13800000000",
                    "countryCode":{cc},"watermark":{{"timestamp":1637744274,"appid":"wx1"}}}}"#
            ))
            .expect("decodes");
            assert_eq!(info.country_code, "86");
        }
    }

    #[test]
    fn session_debug_hides_the_key() {
        let s: MpSession =
            serde_json::from_str(r#"{"openid":"o1","session_key":"c2Vzc2lvbmtleQ=="}"#)
                .expect("decodes");
        assert!(!format!("{s:?}").contains("c2Vzc2lvbmtleQ"));
        assert_eq!(s.session_key.expose(), "c2Vzc2lvbmtleQ==");
    }
}
