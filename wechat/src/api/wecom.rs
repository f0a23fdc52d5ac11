//! WeCom customer-contact APIs: an external contact with the reps who follow them
//! (`externalcontact/get`), marking corp tags (`externalcontact/mark_tag`) and the corp tag
//! library (`externalcontact/get_corp_tag_list`). They need the customer-contact secret (or an
//! app granted customer-contact access): otherwise 48001; an app edits only tags it created
//! (301002).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiClient, ApiError, AppKind, Auth, Empty, Family, Request};

/// The customer part of `externalcontact/get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalContact {
    /// The customer's external_userid.
    pub external_userid: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// 1 = WeChat user, 2 = WeCom user.
    #[serde(rename = "type", default)]
    pub contact_type: i32,
    /// 0 unknown, 1 male, 2 female.
    #[serde(default)]
    pub gender: i32,
    /// UnionID (WeChat users only, when a developer account is bound).
    #[serde(default)]
    pub unionid: Option<String>,
    /// Avatar URL.
    #[serde(default)]
    pub avatar: Option<String>,
    /// Position (WeCom users).
    #[serde(default)]
    pub position: Option<String>,
    /// Company short name (WeCom users).
    #[serde(default)]
    pub corp_name: Option<String>,
    /// Company full name (WeCom users).
    #[serde(default)]
    pub corp_full_name: Option<String>,
}

/// A tag a rep put on the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUserTag {
    /// Tag group name (corp tags).
    #[serde(default)]
    pub group_name: String,
    /// Tag name.
    #[serde(default)]
    pub tag_name: String,
    /// Corp tag id; absent for personal tags.
    #[serde(default)]
    pub tag_id: Option<String>,
    /// 1 corp tag, 2 personal tag, 3 rule-group tag.
    #[serde(rename = "type", default)]
    pub tag_type: i32,
}

/// A rep who has the customer as a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUser {
    /// The rep's userid.
    pub userid: String,
    /// The rep's remark on the customer.
    #[serde(default)]
    pub remark: String,
    /// The rep's description of the customer.
    #[serde(default)]
    pub description: String,
    /// Unix time the contact was added.
    #[serde(default)]
    pub createtime: i64,
    /// Tags on the customer.
    #[serde(default)]
    pub tags: Vec<FollowUserTag>,
    /// Company name the rep noted.
    #[serde(default)]
    pub remark_corp_name: Option<String>,
    /// Phone numbers the rep noted.
    #[serde(default)]
    pub remark_mobiles: Vec<String>,
    /// How the contact was added: 0 unknown, 1 QR code, 2 phone search, 3 card share, 4 group
    /// chat, 5 phone contacts, 6 WeChat contacts, 7 friend request, 8 third party, 9 email,
    /// 201 internal share, 202 admin assignment.
    #[serde(default)]
    pub add_way: i32,
    /// Who added the contact (the rep or the customer).
    #[serde(default)]
    pub oper_userid: Option<String>,
    /// The `state` of the contact-me QR code used, if any.
    #[serde(default)]
    pub state: Option<String>,
}

/// Answer of `externalcontact/get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalContactDetail {
    /// The customer.
    pub external_contact: ExternalContact,
    /// The reps who have the customer as a contact.
    #[serde(default)]
    pub follow_user: Vec<FollowUser>,
    /// Cursor of the next page of `follow_user` (empty or absent when complete).
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Body of `externalcontact/mark_tag`: the customer must be a contact of `userid`, and
/// `add_tag` and `remove_tag` are not both empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkTagRequest {
    /// The rep.
    pub userid: String,
    /// The customer.
    pub external_userid: String,
    /// Corp tag ids to add.
    #[serde(default)]
    pub add_tag: Vec<String>,
    /// Corp tag ids to remove.
    #[serde(default)]
    pub remove_tag: Vec<String>,
}

/// A corp tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpTag {
    /// Tag id.
    pub id: String,
    /// Tag name.
    pub name: String,
    /// Unix creation time.
    #[serde(default)]
    pub create_time: i64,
    /// Sort order (larger first).
    #[serde(default)]
    pub order: i64,
    /// Deleted tags may still be returned, flagged.
    #[serde(default)]
    pub deleted: bool,
}

/// A corp tag group with its tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpTagGroup {
    /// Group id.
    pub group_id: String,
    /// Group name.
    pub group_name: String,
    /// Unix creation time.
    #[serde(default)]
    pub create_time: i64,
    /// Sort order (larger first).
    #[serde(default)]
    pub order: i64,
    /// Deleted groups may still be returned, flagged.
    #[serde(default)]
    pub deleted: bool,
    /// The group's tags.
    #[serde(default)]
    pub tag: Vec<CorpTag>,
}

/// A tag to create with [`ApiClient::wecom_add_corp_tag`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewCorpTag {
    /// At most 30 characters, new within its group.
    pub name: String,
    /// Sort order (larger first).
    pub order: i64,
}

/// Where [`ApiClient::wecom_add_corp_tag`] puts the tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorpTagGroupRef<'a> {
    /// An existing group.
    Id(&'a str),
    /// The group of that name, created (with that sort order) when there is none.
    Name { name: &'a str, order: i64 },
}

#[derive(Deserialize)]
struct AddCorpTagAnswer {
    tag_group: CorpTagGroup,
}

#[derive(Deserialize)]
struct CorpTagListAnswer {
    #[serde(default)]
    tag_group: Vec<CorpTagGroup>,
}

impl ApiClient {
    /// `GET /cgi-bin/externalcontact/get`: a customer and the reps following them. `cursor`
    /// pages through `follow_user` for customers with very many reps.
    pub async fn wecom_external_contact<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        external_userid: &str,
        cursor: Option<&str>,
    ) -> Result<ExternalContactDetail, ApiError> {
        let app = app.into();
        app.require(AppKind::WeCom)?;
        let mut req = Request::get(Family::WeCom, "/cgi-bin/externalcontact/get")
            .query("external_userid", external_userid);
        if let Some(c) = cursor.filter(|c| !c.is_empty()) {
            req = req.query("cursor", c);
        }
        self.call(app, req).await
    }

    /// `POST /cgi-bin/externalcontact/mark_tag`: adds and removes corp tags on a customer as
    /// seen by one rep. Changes made through the API trigger no callback.
    pub async fn wecom_mark_tag<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        request: &MarkTagRequest,
    ) -> Result<(), ApiError> {
        let app = app.into();
        app.require(AppKind::WeCom)?;
        let body = serde_json::to_value(request).map_err(|e| ApiError::InvalidResponse {
            endpoint: "/cgi-bin/externalcontact/mark_tag".to_owned(),
            status: None,
            message: format!("cannot encode the request: {e}"),
        })?;
        let req = Request::post(Family::WeCom, "/cgi-bin/externalcontact/mark_tag", body);
        self.call::<Empty>(app, req).await.map(drop)
    }

    /// `POST /cgi-bin/externalcontact/add_corp_tag`: creates corp tags in a group (see
    /// [`CorpTagGroupRef`]); the answer is the group with only the tags just created.
    pub async fn wecom_add_corp_tag<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        group: CorpTagGroupRef<'_>,
        tags: &[NewCorpTag],
    ) -> Result<CorpTagGroup, ApiError> {
        let app = app.into();
        app.require(AppKind::WeCom)?;
        let body = match group {
            CorpTagGroupRef::Id(id) => json!({ "group_id": id, "tag": tags }),
            CorpTagGroupRef::Name { name, order } => {
                json!({ "group_name": name, "order": order, "tag": tags })
            }
        };
        let req = Request::post(Family::WeCom, "/cgi-bin/externalcontact/add_corp_tag", body);
        let answer: AddCorpTagAnswer = self.call(app, req).await?;
        Ok(answer.tag_group)
    }

    /// `POST /cgi-bin/externalcontact/get_corp_tag_list`: the corp tag library; both lists empty
    /// = everything; with `group_ids` whole groups (and `tag_ids` is ignored), with `tag_ids`
    /// only those tags within their groups.
    pub async fn wecom_corp_tag_list<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        tag_ids: &[&str],
        group_ids: &[&str],
    ) -> Result<Vec<CorpTagGroup>, ApiError> {
        let app = app.into();
        app.require(AppKind::WeCom)?;
        let req = Request::post(
            Family::WeCom,
            "/cgi-bin/externalcontact/get_corp_tag_list",
            json!({ "tag_id": tag_ids, "group_id": group_ids }),
        );
        let answer: CorpTagListAnswer = self.call(app, req).await?;
        Ok(answer.tag_group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_decodes() {
        let detail: ExternalContactDetail = serde_json::from_str(
            r#"{"errcode":0,"errmsg":"ok",
            "external_contact":{"external_userid":"woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA","name":"李四",
              "position":"Manager","avatar":"http://p.qlogo.cn/x/0","corp_name":"腾讯",
              "corp_full_name":"腾讯科技有限公司","type":2,"gender":1,
              "unionid":"ozynqsulJFCZ2z1aYeS8h-nuasdAAA","external_profile":{"external_attr":[]}},
            "follow_user":[{"userid":"rocky","remark":"李部长","description":"对接采购事务",
              "createtime":1525779812,"tags":[{"group_name":"标签分组名称","tag_name":"标签名称",
              "tag_id":"etAJ2GCAAAXtWyujaWJHDDGi0mACHAAA","type":1},
              {"group_name":"","tag_name":"个人","type":2}],
              "remark_corp_name":"腾讯科技","remark_mobiles":["13800000001"],"oper_userid":"rocky",
              "add_way":1,"state":"外部联系人的自定义标识"}],
            "next_cursor":"NEXT_CURSOR"}"#,
        )
        .expect("decodes");
        assert_eq!(detail.external_contact.contact_type, 2);
        assert_eq!(detail.follow_user[0].tags[1].tag_id, None);
        assert_eq!(
            detail.follow_user[0].state.as_deref(),
            Some("外部联系人的自定义标识")
        );
    }
}
