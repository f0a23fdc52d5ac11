//! Official Account APIs: user info and user tags (`/cgi-bin/user/info`, `/cgi-bin/tags/…`).
//!
//! Limits WeChat enforces (reported as typed errors): 100 tags per account (45056), names of at
//! most 30 bytes (45158) and unique (45157), system tags 0–2 immutable (45058), 20 tags per user
//! (45059), 1–50 openids per batch (40032).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiClient, ApiError, AppKind, Auth, Empty, Family, Request};

/// Answer of `GET /cgi-bin/user/info`. Since 2021-12-27 there is no nickname or avatar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OaUserInfo {
    /// 1 when the user follows the account, 0 otherwise (then only `openid` is meaningful).
    #[serde(default)]
    pub subscribe: i32,
    /// The user's openid under this account.
    pub openid: String,
    /// Language, e.g. `zh_CN`.
    #[serde(default)]
    pub language: Option<String>,
    /// Unix time of the (last) follow.
    #[serde(default)]
    pub subscribe_time: Option<i64>,
    /// Present when the account is bound to an Open Platform account.
    #[serde(default)]
    pub unionid: Option<String>,
    /// The operator's remark on the user.
    #[serde(default)]
    pub remark: Option<String>,
    /// Legacy group id.
    #[serde(default)]
    pub groupid: Option<i64>,
    /// The ids of the user's tags.
    #[serde(default)]
    pub tagid_list: Vec<i64>,
    /// How the user followed: `ADD_SCENE_SEARCH`, `ADD_SCENE_QR_CODE`, …
    #[serde(default)]
    pub subscribe_scene: Option<String>,
    /// Numeric scene of the QR code followed through.
    #[serde(default)]
    pub qr_scene: Option<i64>,
    /// String scene of the QR code followed through.
    #[serde(default)]
    pub qr_scene_str: Option<String>,
}

impl OaUserInfo {
    /// `true` when the user currently follows the account.
    pub fn is_subscribed(&self) -> bool {
        self.subscribe == 1
    }
}

/// An Official Account user tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OaTag {
    /// Tag id (0–2 are system tags).
    pub id: i64,
    /// Tag name.
    pub name: String,
    /// Users carrying the tag (only in `tags/get`).
    #[serde(default)]
    pub count: u64,
}

#[derive(Deserialize)]
struct TagAnswer {
    tag: OaTag,
}

#[derive(Deserialize)]
struct TagsAnswer {
    #[serde(default)]
    tags: Vec<OaTag>,
}

#[derive(Deserialize)]
struct TagIdsAnswer {
    #[serde(default)]
    tagid_list: Vec<i64>,
}

impl ApiClient {
    /// `GET /cgi-bin/user/info`: a user of the account (language `zh_CN`).
    pub async fn oa_user_info<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        openid: &str,
    ) -> Result<OaUserInfo, ApiError> {
        let app = app.into();
        app.require(AppKind::OfficialAccount)?;
        let req = Request::get(Family::Weixin, "/cgi-bin/user/info")
            .query("openid", openid)
            .query("lang", "zh_CN");
        self.call(app, req).await
    }

    /// `POST /cgi-bin/tags/create`: creates a tag and returns it with its id.
    pub async fn oa_create_tag<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        name: &str,
    ) -> Result<OaTag, ApiError> {
        let app = app.into();
        app.require(AppKind::OfficialAccount)?;
        let req = Request::post(
            Family::Weixin,
            "/cgi-bin/tags/create",
            json!({ "tag": { "name": name } }),
        );
        let answer: TagAnswer = self.call(app, req).await?;
        Ok(answer.tag)
    }

    /// `GET /cgi-bin/tags/get`: every tag of the account with its user count.
    pub async fn oa_tags<'a>(&self, app: impl Into<Auth<'a>>) -> Result<Vec<OaTag>, ApiError> {
        let app = app.into();
        app.require(AppKind::OfficialAccount)?;
        let answer: TagsAnswer = self
            .call(app, Request::get(Family::Weixin, "/cgi-bin/tags/get"))
            .await?;
        Ok(answer.tags)
    }

    /// `POST /cgi-bin/tags/update`: renames a tag.
    pub async fn oa_update_tag<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        id: i64,
        name: &str,
    ) -> Result<(), ApiError> {
        let app = app.into();
        app.require(AppKind::OfficialAccount)?;
        let req = Request::post(
            Family::Weixin,
            "/cgi-bin/tags/update",
            json!({ "tag": { "id": id, "name": name } }),
        );
        self.call::<Empty>(app, req).await.map(drop)
    }

    /// `POST /cgi-bin/tags/delete`: deletes a tag (and removes it from its users).
    pub async fn oa_delete_tag<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        id: i64,
    ) -> Result<(), ApiError> {
        let app = app.into();
        app.require(AppKind::OfficialAccount)?;
        let req = Request::post(
            Family::Weixin,
            "/cgi-bin/tags/delete",
            json!({ "tag": { "id": id } }),
        );
        self.call::<Empty>(app, req).await.map(drop)
    }

    /// `POST /cgi-bin/tags/members/batchtagging`: puts a tag on 1–50 users.
    pub async fn oa_batch_tag<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        tag_id: i64,
        openids: &[&str],
    ) -> Result<(), ApiError> {
        self.oa_tag_members(app, "/cgi-bin/tags/members/batchtagging", tag_id, openids)
            .await
    }

    /// `POST /cgi-bin/tags/members/batchuntagging`: removes a tag from 1–50 users.
    pub async fn oa_batch_untag<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        tag_id: i64,
        openids: &[&str],
    ) -> Result<(), ApiError> {
        self.oa_tag_members(app, "/cgi-bin/tags/members/batchuntagging", tag_id, openids)
            .await
    }

    /// Tagging and untagging share one request shape; only the path differs.
    async fn oa_tag_members<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        path: &'static str,
        tag_id: i64,
        openids: &[&str],
    ) -> Result<(), ApiError> {
        let app = app.into();
        app.require(AppKind::OfficialAccount)?;
        let req = Request::post(
            Family::Weixin,
            path,
            json!({ "openid_list": openids, "tagid": tag_id }),
        );
        self.call::<Empty>(app, req).await.map(drop)
    }

    /// `POST /cgi-bin/tags/getidlist`: the ids of a user's tags.
    pub async fn oa_user_tag_ids<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        openid: &str,
    ) -> Result<Vec<i64>, ApiError> {
        let app = app.into();
        app.require(AppKind::OfficialAccount)?;
        let req = Request::post(
            Family::Weixin,
            "/cgi-bin/tags/getidlist",
            json!({ "openid": openid }),
        );
        let answer: TagIdsAnswer = self.call(app, req).await?;
        Ok(answer.tagid_list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_tolerates_unknown_and_missing_fields() {
        let unsubscribed: OaUserInfo =
            serde_json::from_str(r#"{"subscribe":0,"openid":"o1","tagid_list":[],"new_field":1}"#)
                .expect("decodes");
        assert!(!unsubscribed.is_subscribed());
        assert_eq!(unsubscribed.unionid, None);
        let full: OaUserInfo = serde_json::from_str(
            r#"{"subscribe":1,"openid":"o1","language":"zh_CN","subscribe_time":1,
                "unionid":"u1","remark":"","groupid":0,"tagid_list":[128,2],
                "subscribe_scene":"ADD_SCENE_QR_CODE","qr_scene":98765,"qr_scene_str":""}"#,
        )
        .expect("decodes");
        assert!(full.is_subscribed());
        assert_eq!(full.tagid_list, vec![128, 2]);
        assert_eq!(full.qr_scene, Some(98765));
    }
}
