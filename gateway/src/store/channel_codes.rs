//! Channel codes the tenant's operators made (`channel_codes`): which app, what WeChat knows it
//! by (a contact-me code's `config_id`, a QR code's ticket), its entry key and source, its reps
//! and image, and when it was retired.

use chrono::{DateTime, Utc};
use platform::db::schema::{dt_null, index, opt_str, str_col, text, ts_col};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use sea_orm_migration::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

pub mod code {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "channel_codes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        /// `wecom_contact_way` or `oa_qrcode`.
        pub kind: String,
        pub app_id: String,
        pub name: String,
        pub source_id: Option<String>,
        /// The contact-me `state` or the QR scene.
        pub entry_key: String,
        /// The contact-me code's `config_id` or the QR code's ticket.
        pub wechat_ref: String,
        pub image_url: String,
        /// The reps' userids (JSON list).
        #[sea_orm(column_type = "Text")]
        pub reps: String,
        pub skip_verify: bool,
        pub temporary: bool,
        /// The default tags (JSON list of tag ids) and the tag rules keeping them (JSON list).
        #[sea_orm(column_type = "Text")]
        pub tags: String,
        #[sea_orm(column_type = "Text")]
        pub tag_rules: String,
        pub expires_at: Option<DateTimeUtc>,
        pub created_by: String,
        pub created_at: DateTimeUtc,
        pub retired_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(DeriveIden)]
enum ChannelCodes {
    Table,
    Id,
    TenantId,
    Kind,
    AppId,
    Name,
    SourceId,
    EntryKey,
    WechatRef,
    ImageUrl,
    Reps,
    SkipVerify,
    Temporary,
    Tags,
    TagRules,
    ExpiresAt,
    CreatedBy,
    CreatedAt,
    RetiredAt,
}

/// Creates `channel_codes`, with the tenant's list index and one code per (app, entry key).
pub struct CreateChannelCodes;

impl MigrationName for CreateChannelCodes {
    fn name(&self) -> &str {
        "m20261218_000002_create_channel_codes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateChannelCodes {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use ChannelCodes as C;
        m.create_table(
            Table::create()
                .table(C::Table)
                .if_not_exists()
                .col(str_col(C::Id, 36).primary_key())
                .col(str_col(C::TenantId, 64))
                .col(str_col(C::Kind, 24))
                .col(str_col(C::AppId, 64))
                .col(str_col(C::Name, 256))
                .col(opt_str(C::SourceId, 36))
                .col(str_col(C::EntryKey, 64))
                .col(str_col(C::WechatRef, 256))
                .col(str_col(C::ImageUrl, 512))
                .col(text(C::Reps))
                .col(ColumnDef::new(C::SkipVerify).boolean().not_null())
                .col(ColumnDef::new(C::Temporary).boolean().not_null())
                .col(text(C::Tags))
                .col(text(C::TagRules))
                .col(dt_null(C::ExpiresAt))
                .col(str_col(C::CreatedBy, 64))
                .col(ts_col(C::CreatedAt))
                .col(dt_null(C::RetiredAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_channel_codes_tenant",
            C::Table,
            vec![C::TenantId.into_iden(), C::Id.into_iden()],
            false,
        )
        .await?;
        index(
            m,
            "ux_channel_codes_key",
            C::Table,
            vec![
                C::AppId.into_iden(),
                C::Kind.into_iden(),
                C::EntryKey.into_iden(),
            ],
            true,
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(ChannelCodes::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}

/// A channel code as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct CodeView {
    pub id: String,
    /// `wecom_contact_way` or `oa_qrcode`.
    pub kind: String,
    pub app_id: String,
    pub name: String,
    pub source_id: Option<String>,
    /// The contact-me `state` or the QR scene customers arrive with.
    pub key: String,
    /// The contact-me code's `config_id`, or the QR code's ticket.
    pub wechat_ref: String,
    /// The code's image.
    pub image_url: String,
    pub reps: Vec<String>,
    pub skip_verify: bool,
    pub temporary: bool,
    /// Tags every customer arriving through the code gets.
    pub tags: Vec<String>,
    /// The `add_only` tag rules keeping them (tagging's ids).
    pub tag_rules: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl From<code::Model> for CodeView {
    fn from(c: code::Model) -> Self {
        CodeView {
            reps: serde_json::from_str(&c.reps).unwrap_or_default(),
            tags: serde_json::from_str(&c.tags).unwrap_or_default(),
            tag_rules: serde_json::from_str(&c.tag_rules).unwrap_or_default(),
            id: c.id,
            kind: c.kind,
            app_id: c.app_id,
            name: c.name,
            source_id: c.source_id,
            key: c.entry_key,
            wechat_ref: c.wechat_ref,
            image_url: c.image_url,
            skip_verify: c.skip_verify,
            temporary: c.temporary,
            expires_at: c.expires_at,
            created_by: c.created_by,
            created_at: c.created_at,
            retired_at: c.retired_at,
        }
    }
}

/// Keeps a code WeChat made.
pub async fn insert(db: &DatabaseConnection, c: code::Model) -> Result<code::Model, DbErr> {
    let m: code::ActiveModel = c.into();
    m.insert(db).await
}

/// Whether the app has a live or retired code with this entry key.
pub async fn key_used(
    db: &DatabaseConnection,
    app_id: &str,
    kind: &str,
    key: &str,
) -> Result<bool, DbErr> {
    Ok(code::Entity::find()
        .filter(code::Column::AppId.eq(app_id))
        .filter(code::Column::Kind.eq(kind))
        .filter(code::Column::EntryKey.eq(key))
        .one(db)
        .await?
        .is_some())
}

/// The tenant's code `id`.
pub async fn get_in(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
) -> Result<Option<code::Model>, DbErr> {
    code::Entity::find_by_id(id.to_string())
        .filter(code::Column::TenantId.eq(tenant))
        .one(db)
        .await
}

/// The tenant's codes in id order (newest last), after `after`.
pub async fn list(
    db: &DatabaseConnection,
    tenant: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<code::Model>, DbErr> {
    let mut q = code::Entity::find().filter(code::Column::TenantId.eq(tenant));
    if let Some(a) = after {
        q = q.filter(code::Column::Id.gt(a));
    }
    q.order_by_asc(code::Column::Id).limit(limit).all(db).await
}

/// Sets the code's name, reps and verification.
pub async fn update(
    db: &DatabaseConnection,
    c: code::Model,
    name: String,
    reps: &[String],
    skip_verify: bool,
) -> Result<code::Model, DbErr> {
    let mut m: code::ActiveModel = c.into();
    m.name = Set(name);
    m.reps = Set(serde_json::to_string(reps).unwrap_or_else(|_| "[]".into()));
    m.skip_verify = Set(skip_verify);
    m.update(db).await
}

/// Marks the code retired.
pub async fn retire(
    db: &DatabaseConnection,
    c: code::Model,
    at: DateTime<Utc>,
) -> Result<code::Model, DbErr> {
    let mut m: code::ActiveModel = c.into();
    m.retired_at = Set(Some(at));
    m.update(db).await
}
