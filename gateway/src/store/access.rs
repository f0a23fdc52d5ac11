//! Tables of the front door: tenants, users (argon2id password hashes), their role in each
//! tenant, credentials (login sessions and personal API tokens, stored as SHA-256 of the token,
//! with expiry, revocation and last use) and the audit log of every write through the admin API.
//! Memberships carry their own status, so an owner disables a person in their tenant only.

use platform::db::schema::{dt, dt_null, id_col, index, opt_str, str_col};
use sea_orm_migration::prelude::*;

/// `tenants`: one row per customer of the system.
pub mod tenant {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        /// `[a-z0-9][a-z0-9_-]{0,63}`, chosen at creation, never changed.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        /// IANA name, e.g. `Asia/Shanghai`.
        pub time_zone: String,
        /// `active` or `suspended`.
        pub status: String,
        pub created_at: DateTime,
        pub updated_at: DateTime,
        /// Does a WeCom member signing in to the sidebar for the first time become a user with
        /// the `rep` role (else an owner adds them first)?
        pub reps_sign_up: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `users`: people who sign in (operators; reps later through WeCom).
pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Lower-cased; unique.
        pub email: String,
        pub name: String,
        /// PHC string of an argon2id hash; `None` for a user who cannot sign in with a password.
        pub password_hash: Option<String>,
        /// `active` or `disabled`.
        pub status: String,
        pub created_at: DateTime,
        pub updated_at: DateTime,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `tenant_members`: a user's role in a tenant.
pub mod member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenant_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        /// `proto::auth::Role`'s name.
        pub role: String,
        /// `active` or `disabled` (a disabled member's credentials for the tenant sign nothing
        /// in).
        pub status: String,
        pub created_at: DateTime,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `auth_tokens`: login sessions and personal API tokens.
pub mod token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "auth_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Hex SHA-256 of the token; the token itself is shown once and never stored.
        pub token_hash: String,
        /// `session` or `api`.
        pub kind: String,
        pub user_id: String,
        pub tenant_id: String,
        /// The role the token acts with (at most the user's role in the tenant).
        pub role: String,
        pub name: String,
        pub created_at: DateTime,
        pub expires_at: Option<DateTime>,
        pub last_used_at: Option<DateTime>,
        pub revoked_at: Option<DateTime>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `audit_log`: every write through the admin API.
pub mod audit {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        /// `user:<id>`.
        pub actor: String,
        /// `<METHOD> <route pattern>`, e.g. `PATCH /admin/v1/tags/{id}`.
        pub action: String,
        /// The request path (the resource acted on).
        pub target: String,
        pub status: i32,
        /// JSON: `{request, before, after}` with secrets and passwords removed.
        pub summary: String,
        pub request_id: Option<String>,
        pub at: DateTime,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    TimeZone,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    PasswordHash,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TenantMembers {
    Table,
    TenantId,
    UserId,
    Role,
    Status,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuthTokens {
    Table,
    Id,
    TokenHash,
    Kind,
    UserId,
    TenantId,
    Role,
    Name,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    TenantId,
    Actor,
    Action,
    Target,
    Status,
    Summary,
    RequestId,
    At,
}

/// Creates the front door's tables.
pub struct CreateAccess;

impl MigrationName for CreateAccess {
    fn name(&self) -> &str {
        "m20261206_000001_create_access"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAccess {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Tenants::Table)
                .if_not_exists()
                .col(str_col(Tenants::Id, 64).primary_key())
                .col(str_col(Tenants::Name, 128))
                .col(str_col(Tenants::TimeZone, 64))
                .col(str_col(Tenants::Status, 16))
                .col(dt(Tenants::CreatedAt))
                .col(dt(Tenants::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Users::Table)
                .if_not_exists()
                .col(str_col(Users::Id, 36).primary_key())
                .col(str_col(Users::Email, 254))
                .col(str_col(Users::Name, 128))
                .col(ColumnDef::new(Users::PasswordHash).text().null())
                .col(str_col(Users::Status, 16))
                .col(dt(Users::CreatedAt))
                .col(dt(Users::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_users_email",
            Users::Table,
            vec![Users::Email.into_iden()],
            true,
        )
        .await?;
        m.create_table(
            Table::create()
                .table(TenantMembers::Table)
                .if_not_exists()
                .col(str_col(TenantMembers::TenantId, 64))
                .col(str_col(TenantMembers::UserId, 36))
                .col(str_col(TenantMembers::Role, 16))
                .col(dt(TenantMembers::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(TenantMembers::TenantId)
                        .col(TenantMembers::UserId),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AuthTokens::Table)
                .if_not_exists()
                .col(str_col(AuthTokens::Id, 36).primary_key())
                .col(str_col(AuthTokens::TokenHash, 64))
                .col(str_col(AuthTokens::Kind, 8))
                .col(str_col(AuthTokens::UserId, 36))
                .col(str_col(AuthTokens::TenantId, 64))
                .col(str_col(AuthTokens::Role, 16))
                .col(str_col(AuthTokens::Name, 128))
                .col(dt(AuthTokens::CreatedAt))
                .col(dt_null(AuthTokens::ExpiresAt))
                .col(dt_null(AuthTokens::LastUsedAt))
                .col(dt_null(AuthTokens::RevokedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_auth_tokens_hash",
            AuthTokens::Table,
            vec![AuthTokens::TokenHash.into_iden()],
            true,
        )
        .await?;
        index(
            m,
            "ix_auth_tokens_user",
            AuthTokens::Table,
            vec![
                AuthTokens::UserId.into_iden(),
                AuthTokens::TenantId.into_iden(),
            ],
            false,
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .if_not_exists()
                .col(id_col(AuditLog::Id))
                .col(str_col(AuditLog::TenantId, 64))
                .col(str_col(AuditLog::Actor, 128))
                .col(str_col(AuditLog::Action, 160))
                .col(str_col(AuditLog::Target, 512))
                .col(ColumnDef::new(AuditLog::Status).integer().not_null())
                .col(ColumnDef::new(AuditLog::Summary).text().not_null())
                .col(opt_str(AuditLog::RequestId, 64))
                .col(dt(AuditLog::At))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_audit_log_tenant",
            AuditLog::Table,
            vec![AuditLog::TenantId.into_iden(), AuditLog::Id.into_iden()],
            false,
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            AuditLog::Table.into_iden(),
            AuthTokens::Table.into_iden(),
            TenantMembers::Table.into_iden(),
            Users::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Gives memberships a status (`active` or `disabled`), every existing one active.
pub struct AddMemberStatus;

impl MigrationName for AddMemberStatus {
    fn name(&self) -> &str {
        "m20261207_000001_member_status"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddMemberStatus {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.has_column("tenant_members", "status").await? {
            return Ok(());
        }
        m.alter_table(
            Table::alter()
                .table(TenantMembers::Table)
                .add_column(
                    ColumnDef::new(TenantMembers::Status)
                        .string_len(16)
                        .not_null()
                        .default("active"),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(TenantMembers::Table)
                .drop_column(TenantMembers::Status)
                .to_owned(),
        )
        .await
    }
}
