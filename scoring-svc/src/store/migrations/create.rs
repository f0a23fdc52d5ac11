//! The first schema: every scoring table with its indexes.

use super::*;

/// Creates every scoring table.
pub struct CreateScoringTables;

impl MigrationName for CreateScoringTables {
    fn name(&self) -> &str {
        "m20260601_000001_create_scoring_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateScoringTables {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use ScoreModels as M;
        m.create_table(
            Table::create()
                .table(M::Table)
                .if_not_exists()
                .col(str_col(M::Id, ID).primary_key())
                .col(str_col(M::TenantId, TENANT))
                .col(str_col(M::Key, 64))
                .col(str_col(M::Name, 255))
                .col(text(M::Description))
                .col(text(M::Decay))
                .col(str_col(M::Status, 16))
                .col(dt(M::Epoch))
                .col(str_col(M::CreatedBy, ACTOR))
                .col(str_col(M::UpdatedBy, ACTOR))
                .col(ts_col(M::CreatedAt))
                .col(ts_col(M::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_score_models_key",
            M::Table,
            cols(&[M::TenantId, M::Key]),
            true,
        )
        .await?;

        use ScoreRules as R;
        m.create_table(
            Table::create()
                .table(R::Table)
                .if_not_exists()
                .col(str_col(R::Id, ID).primary_key())
                .col(str_col(R::TenantId, TENANT))
                .col(str_col(R::ModelId, ID))
                .col(str_col(R::Name, 255))
                .col(str_col(R::Kind, 16))
                .col(text(R::Spec))
                .col(double(R::Points))
                .col(boolean(R::Enabled))
                .col(str_col(R::Status, 16))
                .col(str_col(R::CreatedBy, ACTOR))
                .col(str_col(R::UpdatedBy, ACTOR))
                .col(ts_col(R::CreatedAt))
                .col(ts_col(R::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_score_rules_tenant",
            R::Table,
            cols(&[R::TenantId, R::ModelId]),
            false,
        )
        .await?;

        use StageMachines as S;
        m.create_table(
            Table::create()
                .table(S::Table)
                .if_not_exists()
                .col(str_col(S::TenantId, TENANT).primary_key())
                .col(text(S::Spec))
                .col(str_col(S::UpdatedBy, ACTOR))
                .col(ts_col(S::UpdatedAt))
                .to_owned(),
        )
        .await?;

        use ScoreTriggers as G;
        m.create_table(
            Table::create()
                .table(G::Table)
                .if_not_exists()
                .col(str_col(G::Id, ID).primary_key())
                .col(str_col(G::TenantId, TENANT))
                .col(str_col(G::Name, 255))
                .col(text(G::Spec))
                .col(boolean(G::Enabled))
                .col(str_col(G::Status, 16))
                .col(str_col(G::CreatedBy, ACTOR))
                .col(str_col(G::UpdatedBy, ACTOR))
                .col(ts_col(G::CreatedAt))
                .col(ts_col(G::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_score_triggers_tenant",
            G::Table,
            cols(&[G::TenantId]),
            false,
        )
        .await?;

        use ScoringTenants as V;
        m.create_table(
            Table::create()
                .table(V::Table)
                .if_not_exists()
                .col(str_col(V::TenantId, TENANT).primary_key())
                .col(big(V::Version))
                .col(ts_col(V::UpdatedAt))
                .to_owned(),
        )
        .await?;

        use Leads as L;
        m.create_table(
            Table::create()
                .table(L::Table)
                .if_not_exists()
                .col(str_col(L::TenantId, TENANT))
                .col(str_col(L::ProfileId, PROFILE))
                .col(str_col(L::Stage, 64))
                .col(dt(L::StageEnteredAt))
                .col(big(L::HistoryId))
                .col(str_col(L::Status, 16))
                .col(opt_str(L::MergedInto, PROFILE))
                .col(opt_str(L::OwnerCorpId, 64))
                .col(opt_str(L::OwnerUserId, ACTOR))
                .col(opt_str(L::OwnerExternalUserid, ACTOR))
                .col(dt_null(L::LastActivityAt))
                .col(dt_null(L::NextCheckAt))
                .col(ts_col(L::CreatedAt))
                .col(ts_col(L::UpdatedAt))
                .primary_key(Index::create().col(L::TenantId).col(L::ProfileId))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_leads_stage",
            L::Table,
            cols(&[L::TenantId, L::Stage]),
            false,
        )
        .await?;
        index(
            m,
            "ix_leads_owner",
            L::Table,
            cols(&[L::TenantId, L::OwnerUserId]),
            false,
        )
        .await?;
        index(m, "ix_leads_due", L::Table, cols(&[L::NextCheckAt]), false).await?;

        use LeadStageHistory as H;
        m.create_table(
            Table::create()
                .table(H::Table)
                .if_not_exists()
                .col(id_col(H::Id))
                .col(str_col(H::TenantId, TENANT))
                .col(str_col(H::ProfileId, PROFILE))
                .col(opt_str(H::FromStage, 64))
                .col(str_col(H::ToStage, 64))
                .col(str_col(H::ActorKind, 16))
                .col(str_col(H::Actor, 255))
                .col(str_col(H::Reason, 1000))
                .col(dt(H::EnteredAt))
                .col(dt_null(H::LeftAt))
                .col(opt_str(H::CauseId, 64))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_stage_history_profile",
            H::Table,
            cols(&[H::TenantId, H::ProfileId, H::Id]),
            false,
        )
        .await?;

        use LeadSla as A;
        m.create_table(
            Table::create()
                .table(A::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(A::HistoryId)
                        .big_integer()
                        .not_null()
                        .primary_key(),
                )
                .col(str_col(A::TenantId, TENANT))
                .col(str_col(A::ProfileId, PROFILE))
                .col(str_col(A::Stage, 64))
                .col(dt(A::EnteredAt))
                .col(dt(A::DueAt))
                .col(str_col(A::Status, 16))
                .col(dt_null(A::SettledAt))
                .col(opt_str(A::SettledBy, 255))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_lead_sla_due",
            A::Table,
            cols(&[A::Status, A::DueAt]),
            false,
        )
        .await?;
        index(
            m,
            "ix_lead_sla_profile",
            A::Table,
            cols(&[A::TenantId, A::ProfileId, A::Status]),
            false,
        )
        .await?;

        use ScoreLedger as E;
        m.create_table(
            Table::create()
                .table(E::Table)
                .if_not_exists()
                .col(id_col(E::Id))
                .col(str_col(E::TenantId, TENANT))
                .col(str_col(E::ProfileId, PROFILE))
                .col(str_col(E::ModelId, ID))
                .col(str_col(E::RuleId, ID))
                .col(str_col(E::Kind, 16))
                .col(str_col(E::SourceKey, 64))
                .col(big(E::VoidKey))
                .col(opt_str(E::EventKind, 128))
                .col(double(E::Points))
                .col(double(E::Delta))
                .col(opt_str(E::Capped, 16))
                .col(dt(E::EarnedAt))
                .col(dt_null(E::ExpiresAt))
                .col(opt_str(E::MergedFrom, PROFILE))
                .col(opt_str(E::CauseId, 64))
                .col(opt_str(E::Note, 512))
                .col(ts_col(E::CreatedAt))
                .col(dt_null(E::VoidedAt))
                .col(opt_str(E::VoidedBy, 64))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_score_ledger_source",
            E::Table,
            cols(&[
                E::TenantId,
                E::ProfileId,
                E::RuleId,
                E::SourceKey,
                E::VoidKey,
            ]),
            true,
        )
        .await?;
        index(
            m,
            "ix_score_ledger_profile",
            E::Table,
            cols(&[E::TenantId, E::ProfileId, E::ModelId, E::Id]),
            false,
        )
        .await?;

        use ProfileScores as P;
        m.create_table(
            Table::create()
                .table(P::Table)
                .if_not_exists()
                .col(str_col(P::TenantId, TENANT))
                .col(str_col(P::ProfileId, PROFILE))
                .col(str_col(P::ModelId, ID))
                .col(double(P::Held))
                .col(double(P::Decaying))
                .col(dt(P::FoldedAt))
                .col(dt_null(P::ValidUntil))
                .col(double(P::Norm))
                .col(ts_col(P::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(P::TenantId)
                        .col(P::ProfileId)
                        .col(P::ModelId),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_profile_scores_model",
            P::Table,
            cols(&[P::TenantId, P::ModelId]),
            false,
        )
        .await?;

        use TriggerState as T;
        m.create_table(
            Table::create()
                .table(T::Table)
                .if_not_exists()
                .col(str_col(T::TenantId, TENANT))
                .col(str_col(T::TriggerId, ID))
                .col(str_col(T::ProfileId, PROFILE))
                .col(boolean(T::Above))
                .col(big(T::Seq))
                .col(ts_col(T::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(T::TenantId)
                        .col(T::ProfileId)
                        .col(T::TriggerId),
                )
                .to_owned(),
        )
        .await?;

        use TriggerFirings as F;
        m.create_table(
            Table::create()
                .table(F::Table)
                .if_not_exists()
                .col(id_col(F::Id))
                .col(str_col(F::TenantId, TENANT))
                .col(str_col(F::TriggerId, ID))
                .col(str_col(F::ProfileId, PROFILE))
                .col(big(F::Seq))
                .col(str_col(F::Kind, 16))
                .col(ColumnDef::new(F::Value).double().null())
                .col(opt_str(F::Stage, 64))
                .col(dt(F::FiredAt))
                .col(opt_str(F::CauseId, 64))
                .col(text(F::Result))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_trigger_firings",
            F::Table,
            cols(&[F::TenantId, F::TriggerId, F::ProfileId, F::Seq]),
            true,
        )
        .await?;
        index(
            m,
            "ix_trigger_firings_profile",
            F::Table,
            cols(&[F::TenantId, F::ProfileId, F::Id]),
            false,
        )
        .await?;

        use LeadEvents as W;
        m.create_table(
            Table::create()
                .table(W::Table)
                .if_not_exists()
                .col(str_col(W::TenantId, TENANT))
                .col(str_col(W::EventId, 64))
                .col(dt(W::EarnedAt))
                .primary_key(Index::create().col(W::TenantId).col(W::EventId))
                .to_owned(),
        )
        .await?;

        use TagClock as C;
        m.create_table(
            Table::create()
                .table(C::Table)
                .if_not_exists()
                .col(str_col(C::TenantId, TENANT))
                .col(str_col(C::ProfileId, PROFILE))
                .col(str_col(C::TagId, 64))
                .col(dt(C::ChangedAt))
                .col(boolean(C::Present))
                .primary_key(
                    Index::create()
                        .col(C::TenantId)
                        .col(C::ProfileId)
                        .col(C::TagId),
                )
                .to_owned(),
        )
        .await?;

        use ScoringJobs as J;
        m.create_table(
            Table::create()
                .table(J::Table)
                .if_not_exists()
                .col(str_col(J::Id, ID).primary_key())
                .col(str_col(J::TenantId, TENANT))
                .col(str_col(J::Kind, 16))
                .col(opt_str(J::ModelId, ID))
                .col(str_col(J::Status, 16))
                .col(big(J::Total))
                .col(big(J::Done))
                .col(opt_str(J::Cursor, PROFILE))
                .col(boolean(J::FireTriggers))
                .col(dt_null(J::LeaseUntil))
                .col(ColumnDef::new(J::Error).text().null())
                .col(str_col(J::CreatedBy, ACTOR))
                .col(ts_col(J::CreatedAt))
                .col(ts_col(J::UpdatedAt))
                .col(dt_null(J::FinishedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_scoring_jobs_status",
            J::Table,
            cols(&[J::Status]),
            false,
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            ScoringJobs::Table.into_iden(),
            TagClock::Table.into_iden(),
            LeadEvents::Table.into_iden(),
            TriggerFirings::Table.into_iden(),
            TriggerState::Table.into_iden(),
            ProfileScores::Table.into_iden(),
            ScoreLedger::Table.into_iden(),
            LeadSla::Table.into_iden(),
            LeadStageHistory::Table.into_iden(),
            Leads::Table.into_iden(),
            ScoringTenants::Table.into_iden(),
            ScoreTriggers::Table.into_iden(),
            StageMachines::Table.into_iden(),
            ScoreRules::Table.into_iden(),
            ScoreModels::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
