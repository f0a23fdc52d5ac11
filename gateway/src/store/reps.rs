//! Sales reps as users: `rep_identities` maps a WeCom member (tenant, corp, userid) to the user
//! who signs in to the sidebar as them, and `tenants.reps_sign_up` says whether a member who
//! signs in for the first time becomes a user with the `rep` role (else an owner adds them).

use sea_orm_migration::prelude::*;

/// `rep_identities`: the WeCom member a user is in the sidebar.
pub mod rep_identity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rep_identities")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub corp_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub wecom_userid: String,
        pub user_id: String,
        pub created_at: DateTime,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(DeriveIden)]
enum RepIdentities {
    Table,
    TenantId,
    CorpId,
    WecomUserid,
    UserId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    RepsSignUp,
}

/// Creates `rep_identities` and adds `tenants.reps_sign_up` (every tenant lets reps sign up).
pub struct AddRepIdentities;

impl MigrationName for AddRepIdentities {
    fn name(&self) -> &str {
        "m20261207_000002_rep_identities"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddRepIdentities {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use platform::db::schema::{dt, str_col};
        m.create_table(
            Table::create()
                .table(RepIdentities::Table)
                .if_not_exists()
                .col(str_col(RepIdentities::TenantId, 64))
                .col(str_col(RepIdentities::CorpId, 64))
                .col(str_col(RepIdentities::WecomUserid, 64))
                .col(str_col(RepIdentities::UserId, 36))
                .col(dt(RepIdentities::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(RepIdentities::TenantId)
                        .col(RepIdentities::CorpId)
                        .col(RepIdentities::WecomUserid),
                )
                .to_owned(),
        )
        .await?;
        platform::db::schema::index(
            m,
            "ix_rep_identities_user",
            RepIdentities::Table,
            vec![
                RepIdentities::TenantId.into_iden(),
                RepIdentities::UserId.into_iden(),
            ],
            false,
        )
        .await?;
        if !m.has_column("tenants", "reps_sign_up").await? {
            m.alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .add_column(
                        ColumnDef::new(Tenants::RepsSignUp)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Tenants::Table)
                .drop_column(Tenants::RepsSignUp)
                .to_owned(),
        )
        .await?;
        m.drop_table(
            Table::drop()
                .table(RepIdentities::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}
