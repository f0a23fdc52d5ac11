//! Channel codes (渠道活码): WeCom contact-me codes (`/cgi-bin/externalcontact/add_contact_way`,
//! `update_contact_way`, `del_contact_way`) and Official Account parametric QR codes
//! (`/cgi-bin/qrcode/create`). A customer added through a contact-me code arrives as an
//! `add_external_contact` callback whose `State` is the code's `state`; a new follower through a
//! QR code as `subscribe` with `EventKey` `qrscene_<scene>`, one already following as `SCAN`
//! with the bare scene.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiClient, ApiError, AppKind, Auth, Empty, Family, Request};

/// Longest contact-me `state`, in characters.
pub const MAX_STATE: usize = 30;
/// Longest QR scene string, in characters.
pub const MAX_SCENE_STR: usize = 64;
/// Longest life of a temporary QR code, in seconds (30 days).
pub const MAX_QR_EXPIRE: u32 = 2_592_000;
/// Longest life of a temporary contact-me code, in seconds (14 days).
pub const MAX_CONTACT_WAY_EXPIRE: u32 = 14 * 86_400;

/// A contact-me code as `add_contact_way` and `update_contact_way` take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactWay {
    /// 1: one rep; 2: several (the customer meets one of them).
    #[serde(rename = "type")]
    pub kind: u8,
    /// 1: in a mini-program; 2: a QR code.
    pub scene: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// Added without the rep's confirmation.
    pub skip_verify: bool,
    /// Comes back as the callback's `State` (≤ [`MAX_STATE`] characters).
    pub state: String,
    /// The reps' userids.
    pub user: Vec<String>,
    /// A temporary code (one customer, then it expires).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_temp: bool,
    /// Life of a temporary code in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u32>,
}

/// Answer of `add_contact_way`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ContactWayAdded {
    pub config_id: String,
    /// The code's image URL (scene 2).
    #[serde(default)]
    pub qr_code: String,
}

/// The scene of an OA parametric QR code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QrScene {
    /// `QR_SCENE` / `QR_LIMIT_SCENE`.
    Id(u32),
    /// `QR_STR_SCENE` / `QR_LIMIT_STR_SCENE` (1–[`MAX_SCENE_STR`] characters).
    Str(String),
}

/// Answer of `qrcode/create`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct QrCodeCreated {
    pub ticket: String,
    /// Life of a temporary code; absent for a permanent one.
    #[serde(default)]
    pub expire_seconds: Option<u32>,
    /// What the code's image encodes.
    pub url: String,
}

impl QrCodeCreated {
    /// The image of the code: `showqrcode` with the URL-encoded ticket.
    pub fn image_url(&self) -> String {
        const SHOW: &str = "https://mp.weixin.qq.com/cgi-bin/showqrcode";
        reqwest::Url::parse_with_params(SHOW, [("ticket", self.ticket.as_str())])
            .map_or_else(|_| SHOW.to_string(), String::from)
    }
}

impl ApiClient {
    /// `POST /cgi-bin/externalcontact/add_contact_way`: a new contact-me code.
    pub async fn wecom_add_contact_way<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        way: &ContactWay,
    ) -> Result<ContactWayAdded, ApiError> {
        let app = app.into();
        app.require(AppKind::WeCom)?;
        let body = json!(way);
        let req = Request::post(
            Family::WeCom,
            "/cgi-bin/externalcontact/add_contact_way",
            body,
        );
        self.call(app, req).await
    }

    /// `POST /cgi-bin/externalcontact/update_contact_way`: replaces a code's remark, verification,
    /// state and reps (its type and scene stay).
    pub async fn wecom_update_contact_way<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        config_id: &str,
        way: &ContactWay,
    ) -> Result<(), ApiError> {
        let app = app.into();
        app.require(AppKind::WeCom)?;
        let mut body = json!({
            "config_id": config_id,
            "skip_verify": way.skip_verify,
            "state": way.state,
            "user": way.user,
        });
        if let Some(r) = &way.remark {
            body["remark"] = json!(r);
        }
        let req = Request::post(
            Family::WeCom,
            "/cgi-bin/externalcontact/update_contact_way",
            body,
        );
        self.call::<Empty>(app, req).await.map(drop)
    }

    /// `POST /cgi-bin/externalcontact/del_contact_way`: the code stops working.
    pub async fn wecom_del_contact_way<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        config_id: &str,
    ) -> Result<(), ApiError> {
        let app = app.into();
        app.require(AppKind::WeCom)?;
        let req = Request::post(
            Family::WeCom,
            "/cgi-bin/externalcontact/del_contact_way",
            json!({ "config_id": config_id }),
        );
        self.call::<Empty>(app, req).await.map(drop)
    }

    /// `POST /cgi-bin/qrcode/create`: a parametric QR code, temporary for `expire_seconds`
    /// (≤ [`MAX_QR_EXPIRE`]) or permanent without.
    pub async fn oa_create_qrcode<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        scene: &QrScene,
        expire_seconds: Option<u32>,
    ) -> Result<QrCodeCreated, ApiError> {
        let app = app.into();
        app.require(AppKind::OfficialAccount)?;
        let (action, info) = match (scene, expire_seconds.is_some()) {
            (QrScene::Id(id), true) => ("QR_SCENE", json!({ "scene_id": id })),
            (QrScene::Id(id), false) => ("QR_LIMIT_SCENE", json!({ "scene_id": id })),
            (QrScene::Str(s), true) => ("QR_STR_SCENE", json!({ "scene_str": s })),
            (QrScene::Str(s), false) => ("QR_LIMIT_STR_SCENE", json!({ "scene_str": s })),
        };
        let mut body = json!({
            "action_name": action,
            "action_info": { "scene": info },
        });
        if let Some(e) = expire_seconds {
            body["expire_seconds"] = json!(e);
        }
        let req = Request::post(Family::Weixin, "/cgi-bin/qrcode/create", body);
        self.call(app, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_way_body_is_the_documented_shape() {
        let way = ContactWay {
            kind: 1,
            scene: 2,
            remark: None,
            skip_verify: true,
            state: "booth_7".into(),
            user: vec!["alice".into()],
            is_temp: false,
            expires_in: None,
        };
        assert_eq!(
            json!(way),
            json!({"type": 1, "scene": 2, "skip_verify": true, "state": "booth_7", "user": ["alice"]})
        );
    }

    #[test]
    fn image_url_encodes_the_ticket() {
        let q = QrCodeCreated {
            ticket: "gQH47joAAAAAAAAAASxodHRw+Oi8v/=".into(),
            expire_seconds: Some(60),
            url: "http://weixin.qq.com/q/kZgfwMTm72WWPkovabbI".into(),
        };
        assert_eq!(
            q.image_url(),
            "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=gQH47joAAAAAAAAAASxodHRw%2BOi8v%2F%3D"
        );
    }
}
