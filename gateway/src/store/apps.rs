//! `wechat_apps`: one row per OA / mini-program appid or WeCom corp, with its token,
//! EncodingAESKey and secret sealed under the gateway's key.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "wechat_apps")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: String,
    /// `oa`, `mp` or `wecom`.
    pub kind: String,
    /// appid (OA, MP) or corpid (WeCom).
    pub app_id: String,
    pub name: String,
    pub token_sealed: String,
    pub aes_key_sealed: Option<String>,
    pub secret_sealed: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
