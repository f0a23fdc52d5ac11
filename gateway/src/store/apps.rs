//! `wechat_apps`: one row per OA / mini-program appid, WeCom corp and WeCom agent app (by its
//! corpid), with its token, EncodingAESKey and secret sealed under the gateway's key.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "wechat_apps")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: String,
    /// `oa`, `mp`, `wecom` or `wecom_agent`.
    pub kind: String,
    /// appid (OA, MP) or corpid (WeCom, WeCom agent).
    pub app_id: String,
    pub name: String,
    /// AgentID of a WeCom agent app.
    pub agent_id: Option<i64>,
    /// Empty for an app without callbacks (an agent app).
    pub token_sealed: String,
    pub aes_key_sealed: Option<String>,
    pub secret_sealed: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
