//! The 360° profile's state: what each source said about each field (`property_records`, one row
//! per identifier, field and source), relationship rows (`oa_subscriptions`, `wecom_follows`,
//! `group_members`), the derived state cached on `profiles` (`fields`, `relations`, `version`,
//! `display_name`), the data-quality log, tenant custom fields and personalised binding tokens.
//!
//! Times that come from outside (event times) are `DATETIME`, not `TIMESTAMP` (whose range ends
//! in 2038); `timeline.occurred_at` is changed to match on MySQL/MariaDB.

use sea_orm::DatabaseBackend;
use sea_orm_migration::prelude::*;

use platform::db::schema::{dt, dt_null, id_col, index, opt_str, str_col};

use super::{Profiles, Timeline};

#[derive(DeriveIden)]
pub enum ProfileState {
    Fields,
    Relations,
    Version,
    DisplayName,
}

#[derive(DeriveIden)]
pub enum PropertyRecords {
    Table,
    Id,
    TenantId,
    IdentifierId,
    Field,
    Source,
    Trust,
    Value,
    ObservedAt,
    EventId,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum OaSubscriptions {
    Table,
    Id,
    TenantId,
    IdentifierId,
    AppId,
    Subscribed,
    Scene,
    ChangedAt,
}

#[derive(DeriveIden)]
pub enum WecomFollows {
    Table,
    Id,
    TenantId,
    IdentifierId,
    CorpId,
    UserId,
    Remark,
    AddWay,
    State,
    AddedAt,
    DeletedAt,
    ChangedAt,
}

#[derive(DeriveIden)]
pub enum GroupMembers {
    Table,
    Id,
    TenantId,
    CorpId,
    ChatId,
    MemberHash,
    JoinedAt,
    LeftAt,
    ChangedAt,
}

#[derive(DeriveIden)]
pub enum DataQualityLog {
    Table,
    Id,
    TenantId,
    ProfileId,
    EventId,
    Field,
    Value,
    Reason,
    Source,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum CustomFields {
    Table,
    Id,
    TenantId,
    Name,
    ValueType,
    Label,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum BindingTokens {
    Table,
    Token,
    TenantId,
    ProfileId,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
}

/// Adds the profile-state tables and columns.
pub struct ProfileStateTables;

impl MigrationName for ProfileStateTables {
    fn name(&self) -> &str {
        "m20260401_000001_profile_state"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ProfileStateTables {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            ColumnDef::new(ProfileState::Fields)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(ProfileState::Relations)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(ProfileState::Version)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            opt_str(ProfileState::DisplayName, 128),
        ] {
            m.alter_table(
                Table::alter()
                    .table(Profiles::Table)
                    .add_column(col)
                    .to_owned(),
            )
            .await?;
        }
        index(
            m,
            "ix_profiles_display_name",
            Profiles::Table,
            vec![
                Profiles::TenantId.into_iden(),
                ProfileState::DisplayName.into_iden(),
            ],
            false,
        )
        .await?;
        if m.get_database_backend() == DatabaseBackend::MySql {
            m.alter_table(
                Table::alter()
                    .table(Timeline::Table)
                    .modify_column(ColumnDef::new(Timeline::OccurredAt).date_time().not_null())
                    .to_owned(),
            )
            .await?;
        }

        m.create_table(
            Table::create()
                .table(PropertyRecords::Table)
                .if_not_exists()
                .col(id_col(PropertyRecords::Id))
                .col(str_col(PropertyRecords::TenantId, 64))
                .col(
                    ColumnDef::new(PropertyRecords::IdentifierId)
                        .big_integer()
                        .not_null(),
                )
                .col(str_col(PropertyRecords::Field, 128))
                .col(str_col(PropertyRecords::Source, 64))
                .col(str_col(PropertyRecords::Trust, 16))
                .col(ColumnDef::new(PropertyRecords::Value).text().not_null())
                .col(dt(PropertyRecords::ObservedAt))
                .col(opt_str(PropertyRecords::EventId, 36))
                .col(dt(PropertyRecords::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_property_records_source",
            PropertyRecords::Table,
            vec![
                PropertyRecords::IdentifierId.into_iden(),
                PropertyRecords::Field.into_iden(),
                PropertyRecords::Source.into_iden(),
            ],
            true,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(OaSubscriptions::Table)
                .if_not_exists()
                .col(id_col(OaSubscriptions::Id))
                .col(str_col(OaSubscriptions::TenantId, 64))
                .col(
                    ColumnDef::new(OaSubscriptions::IdentifierId)
                        .big_integer()
                        .not_null(),
                )
                .col(str_col(OaSubscriptions::AppId, 64))
                .col(
                    ColumnDef::new(OaSubscriptions::Subscribed)
                        .boolean()
                        .not_null(),
                )
                .col(opt_str(OaSubscriptions::Scene, 128))
                .col(dt(OaSubscriptions::ChangedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_oa_subscriptions_identifier",
            OaSubscriptions::Table,
            vec![OaSubscriptions::IdentifierId.into_iden()],
            true,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WecomFollows::Table)
                .if_not_exists()
                .col(id_col(WecomFollows::Id))
                .col(str_col(WecomFollows::TenantId, 64))
                .col(
                    ColumnDef::new(WecomFollows::IdentifierId)
                        .big_integer()
                        .not_null(),
                )
                .col(str_col(WecomFollows::CorpId, 64))
                .col(str_col(WecomFollows::UserId, 64))
                .col(opt_str(WecomFollows::Remark, 255))
                .col(ColumnDef::new(WecomFollows::AddWay).integer().null())
                .col(opt_str(WecomFollows::State, 64))
                .col(dt(WecomFollows::AddedAt))
                .col(dt_null(WecomFollows::DeletedAt))
                .col(dt(WecomFollows::ChangedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_wecom_follows_identifier_user",
            WecomFollows::Table,
            vec![
                WecomFollows::IdentifierId.into_iden(),
                WecomFollows::UserId.into_iden(),
            ],
            true,
        )
        .await?;
        index(
            m,
            "ix_wecom_follows_rep",
            WecomFollows::Table,
            vec![
                WecomFollows::TenantId.into_iden(),
                WecomFollows::CorpId.into_iden(),
                WecomFollows::UserId.into_iden(),
            ],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(GroupMembers::Table)
                .if_not_exists()
                .col(id_col(GroupMembers::Id))
                .col(str_col(GroupMembers::TenantId, 64))
                .col(str_col(GroupMembers::CorpId, 64))
                .col(str_col(GroupMembers::ChatId, 64))
                .col(str_col(GroupMembers::MemberHash, 64))
                .col(dt(GroupMembers::JoinedAt))
                .col(dt_null(GroupMembers::LeftAt))
                .col(dt(GroupMembers::ChangedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_group_members_member",
            GroupMembers::Table,
            vec![
                GroupMembers::TenantId.into_iden(),
                GroupMembers::CorpId.into_iden(),
                GroupMembers::ChatId.into_iden(),
                GroupMembers::MemberHash.into_iden(),
            ],
            true,
        )
        .await?;
        index(
            m,
            "ix_group_members_hash",
            GroupMembers::Table,
            vec![
                GroupMembers::TenantId.into_iden(),
                GroupMembers::CorpId.into_iden(),
                GroupMembers::MemberHash.into_iden(),
            ],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(DataQualityLog::Table)
                .if_not_exists()
                .col(id_col(DataQualityLog::Id))
                .col(str_col(DataQualityLog::TenantId, 64))
                .col(opt_str(DataQualityLog::ProfileId, 36))
                .col(opt_str(DataQualityLog::EventId, 36))
                .col(str_col(DataQualityLog::Field, 128))
                .col(str_col(DataQualityLog::Value, 255))
                .col(str_col(DataQualityLog::Reason, 32))
                .col(str_col(DataQualityLog::Source, 64))
                .col(dt(DataQualityLog::CreatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_data_quality_tenant",
            DataQualityLog::Table,
            vec![
                DataQualityLog::TenantId.into_iden(),
                DataQualityLog::Id.into_iden(),
            ],
            false,
        )
        .await?;
        index(
            m,
            "ix_data_quality_profile",
            DataQualityLog::Table,
            vec![DataQualityLog::ProfileId.into_iden()],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(CustomFields::Table)
                .if_not_exists()
                .col(id_col(CustomFields::Id))
                .col(str_col(CustomFields::TenantId, 64))
                .col(str_col(CustomFields::Name, 64))
                .col(str_col(CustomFields::ValueType, 16))
                .col(str_col(CustomFields::Label, 128))
                .col(str_col(CustomFields::CreatedBy, 64))
                .col(dt(CustomFields::CreatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_custom_fields_name",
            CustomFields::Table,
            vec![
                CustomFields::TenantId.into_iden(),
                CustomFields::Name.into_iden(),
            ],
            true,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(BindingTokens::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(BindingTokens::Token)
                        .string_len(32)
                        .not_null()
                        .primary_key(),
                )
                .col(str_col(BindingTokens::TenantId, 64))
                .col(str_col(BindingTokens::ProfileId, 36))
                .col(str_col(BindingTokens::CreatedBy, 64))
                .col(dt(BindingTokens::CreatedAt))
                .col(dt(BindingTokens::ExpiresAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            BindingTokens::Table.into_iden(),
            CustomFields::Table.into_iden(),
            DataQualityLog::Table.into_iden(),
            GroupMembers::Table.into_iden(),
            WecomFollows::Table.into_iden(),
            OaSubscriptions::Table.into_iden(),
            PropertyRecords::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        m.drop_index(
            Index::drop()
                .name("ix_profiles_display_name")
                .table(Profiles::Table)
                .to_owned(),
        )
        .await?;
        for col in [
            ProfileState::DisplayName.into_iden(),
            ProfileState::Version.into_iden(),
            ProfileState::Relations.into_iden(),
            ProfileState::Fields.into_iden(),
        ] {
            m.alter_table(
                Table::alter()
                    .table(Profiles::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
