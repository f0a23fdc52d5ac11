//! `lead_notifications`: one row per `lead.notify` message (its envelope id is the notification
//! id) with what it said, whom it was for and every try to send it, and the reads a rep's inbox
//! pages through.
//!
//! A row is also the notification's claim: the consumer that inserts it (or takes it over after a
//! retry, or after a dead consumer's lease ran out) is the only one that sends, so a redelivery or
//! the same message published twice (two scoring instances) never sends twice while the first
//! is in flight. The final status is written in one transaction with the inbox record
//! (`platform::db::inbox`), so once a notification is settled every later copy of the message
//! is a duplicate at the first look.

use chrono::{DateTime, Utc};
use platform::db::inbox::{self, Processed};
use platform::db::schema::{id_col, index, opt_str, str_col, ts_col};
use platform::http::page::{Page, PageReq};
use sea_orm::sea_query::{Expr, IntoIden};
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, SqlErr,
};
use sea_orm_migration::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The consumer name of the inbox records.
pub const CONSUMER: &str = "notify";
/// The list name of inbox cursors ([`PageReq::parse`] with it).
pub const INBOX_LIST: &str = "notifications";

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A consumer holds it and is sending now.
    Sending,
    /// A try failed in a way worth retrying; the bus brings it back after a delay.
    Retrying,
    /// The rep has it (`msgid`).
    Sent,
    /// Never sent: see `reason` and the attempts.
    Failed,
    /// Not sent on purpose: `no_owner`, `no_agent_app`.
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sending => "sending",
            Status::Retrying => "retrying",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Status::Sending,
            Status::Retrying,
            Status::Sent,
            Status::Failed,
            Status::Skipped,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Settled for good: no consumer touches it again.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Sent | Status::Failed | Status::Skipped)
    }
}

/// One try to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptRecord {
    pub at: DateTime<Utc>,
    /// WeCom's errcode (0: accepted); null when WeCom was not reached or not called.
    pub errcode: Option<i64>,
    /// WeCom's errmsg, or why the call failed or was not made.
    pub errmsg: Option<String>,
    /// The message id WeCom gave (to recall it).
    pub msgid: Option<String>,
}

/// The table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "lead_notifications")]
    pub struct Model {
        /// Insertion order (the inbox's cursor).
        #[sea_orm(primary_key)]
        pub seq: i64,
        /// The `lead.notify` envelope id; unique.
        pub id: String,
        pub tenant_id: String,
        /// The owner's corp and userid (null without an owner).
        pub corp_id: Option<String>,
        pub user_id: Option<String>,
        /// The customer's external_userid in the corp, when known.
        pub external_userid: Option<String>,
        pub profile_id: String,
        pub trigger_id: String,
        pub title: String,
        pub description: String,
        pub url: String,
        /// [`super::Status`]'s name.
        pub status: String,
        /// Why it was skipped or failed.
        pub reason: Option<String>,
        /// JSON array of [`super::AttemptRecord`].
        pub attempts: String,
        pub msgid: Option<String>,
        /// The holder of the claim while `sending`, and until when.
        pub claim: Option<String>,
        pub lease_until: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use entity::{ActiveModel, Column, Entity, Model};

/// A notification as a rep's inbox shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Notification {
    /// The notification id (the `lead.notify` message id).
    pub id: String,
    pub corp_id: Option<String>,
    pub user_id: Option<String>,
    pub external_userid: Option<String>,
    pub profile_id: String,
    pub trigger_id: String,
    pub title: String,
    /// WeCom's card HTML (`<div class="gray">…</div>…`).
    pub description: String,
    /// The sidebar's customer card.
    pub url: String,
    pub status: Status,
    /// `no_owner`, `no_agent_app` (skipped); `wechat_refused`, `unreached`,
    /// `retries_exhausted` (failed).
    pub reason: Option<String>,
    pub attempts: Vec<AttemptRecord>,
    pub msgid: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Model> for Notification {
    fn from(m: Model) -> Self {
        Notification {
            status: Status::parse(&m.status).unwrap_or(Status::Failed),
            attempts: serde_json::from_str(&m.attempts).unwrap_or_default(),
            id: m.id,
            corp_id: m.corp_id,
            user_id: m.user_id,
            external_userid: m.external_userid,
            profile_id: m.profile_id,
            trigger_id: m.trigger_id,
            title: m.title,
            description: m.description,
            url: m.url,
            reason: m.reason,
            msgid: m.msgid,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// What a notification says and whom it is for, as the consumer decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub id: Uuid,
    pub tenant_id: String,
    pub corp_id: Option<String>,
    pub user_id: Option<String>,
    pub external_userid: Option<String>,
    pub profile_id: String,
    pub trigger_id: String,
    pub title: String,
    pub description: String,
    pub url: String,
}

/// The claim a consumer holds on a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    token: String,
    /// The tries so far (by any consumer).
    pub attempts: Vec<AttemptRecord>,
}

/// What [`claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This consumer sends it.
    Claimed(Claimed),
    /// Settled already.
    Settled(Status),
    /// Another consumer holds it (its lease has not run out).
    InFlight,
}

fn attempts_json(attempts: &[AttemptRecord]) -> String {
    serde_json::to_string(attempts).unwrap_or_else(|_| "[]".into())
}

/// Takes notification `n` for this consumer until `now + lease`: inserts it, or takes over a row
/// waiting for a retry or whose holder's lease ran out (refreshing what it says).
pub async fn claim(
    db: &DatabaseConnection,
    n: &NewNotification,
    now: DateTime<Utc>,
    lease: chrono::Duration,
) -> Result<Claim, DbErr> {
    let token = Uuid::new_v4().to_string();
    let id = n.id.to_string();
    let row = ActiveModel {
        seq: ActiveValue::NotSet,
        id: ActiveValue::Set(id.clone()),
        tenant_id: ActiveValue::Set(n.tenant_id.clone()),
        corp_id: ActiveValue::Set(n.corp_id.clone()),
        user_id: ActiveValue::Set(n.user_id.clone()),
        external_userid: ActiveValue::Set(n.external_userid.clone()),
        profile_id: ActiveValue::Set(n.profile_id.clone()),
        trigger_id: ActiveValue::Set(n.trigger_id.clone()),
        title: ActiveValue::Set(n.title.clone()),
        description: ActiveValue::Set(n.description.clone()),
        url: ActiveValue::Set(n.url.clone()),
        status: ActiveValue::Set(Status::Sending.as_str().into()),
        reason: ActiveValue::Set(None),
        attempts: ActiveValue::Set("[]".into()),
        msgid: ActiveValue::Set(None),
        claim: ActiveValue::Set(Some(token.clone())),
        lease_until: ActiveValue::Set(Some(now + lease)),
        created_at: ActiveValue::Set(now),
        updated_at: ActiveValue::Set(now),
    };
    match Entity::insert(row).exec(db).await {
        Ok(_) => {
            return Ok(Claim::Claimed(Claimed {
                token,
                attempts: Vec::new(),
            }))
        }
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {}
        Err(e) => return Err(e),
    }
    let taken = Entity::update_many()
        .col_expr(Column::Status, Expr::value(Status::Sending.as_str()))
        .col_expr(Column::Claim, Expr::value(token.clone()))
        .col_expr(Column::LeaseUntil, Expr::value(now + lease))
        .col_expr(Column::Title, Expr::value(n.title.clone()))
        .col_expr(Column::Description, Expr::value(n.description.clone()))
        .col_expr(Column::Url, Expr::value(n.url.clone()))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(&id))
        .filter(
            Condition::any()
                .add(Column::Status.eq(Status::Retrying.as_str()))
                .add(
                    Condition::all()
                        .add(Column::Status.eq(Status::Sending.as_str()))
                        .add(Column::LeaseUntil.lt(now)),
                ),
        )
        .exec(db)
        .await?;
    let current = Entity::find().filter(Column::Id.eq(&id)).one(db).await?;
    let Some(current) = current else {
        // Removed in between (never done by this system): nothing to claim.
        return Ok(Claim::InFlight);
    };
    let status = Status::parse(&current.status).unwrap_or(Status::Failed);
    if taken.rows_affected == 1 && current.claim.as_deref() == Some(token.as_str()) {
        return Ok(Claim::Claimed(Claimed {
            token,
            attempts: serde_json::from_str(&current.attempts).unwrap_or_default(),
        }));
    }
    Ok(if status.is_final() {
        Claim::Settled(status)
    } else {
        Claim::InFlight
    })
}

/// The claim was lost: another consumer took the notification over after this one's lease ran
/// out, and settles it.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error("the claim on notification {0} was taken over")]
    ClaimLost(String),
}

/// Gives a claimed notification back to wait for a retry, with `attempts` (the tries so far and
/// this one).
pub async fn release(
    db: &DatabaseConnection,
    id: Uuid,
    claimed: &Claimed,
    attempts: &[AttemptRecord],
    now: DateTime<Utc>,
) -> Result<(), SettleError> {
    let r = Entity::update_many()
        .col_expr(Column::Status, Expr::value(Status::Retrying.as_str()))
        .col_expr(Column::Attempts, Expr::value(attempts_json(attempts)))
        .col_expr(Column::Claim, Expr::value(Option::<String>::None))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(id.to_string()))
        .filter(Column::Claim.eq(&claimed.token))
        .exec(db)
        .await?;
    if r.rows_affected == 0 {
        return Err(SettleError::ClaimLost(id.to_string()));
    }
    Ok(())
}

/// How a claimed notification ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// `Sent`, `Failed` or `Skipped`.
    pub status: Status,
    pub reason: Option<String>,
    pub attempts: Vec<AttemptRecord>,
    pub msgid: Option<String>,
}

/// Settles a claimed notification for good, with the inbox record of its message in the same
/// transaction; `Duplicate` when another consumer settled the message first.
pub async fn settle(
    db: &DatabaseConnection,
    id: Uuid,
    claimed: &Claimed,
    s: &Settlement,
    now: DateTime<Utc>,
) -> Result<Processed<()>, SettleError> {
    let token = claimed.token.clone();
    let (status, reason, attempts, msgid) = (
        s.status.as_str(),
        s.reason.clone(),
        attempts_json(&s.attempts),
        s.msgid.clone(),
    );
    inbox::process_once::<(), SettleError, _>(db, CONSUMER, id, move |txn| {
        Box::pin(async move {
            let r = Entity::update_many()
                .col_expr(Column::Status, Expr::value(status))
                .col_expr(Column::Reason, Expr::value(reason))
                .col_expr(Column::Attempts, Expr::value(attempts))
                .col_expr(Column::Msgid, Expr::value(msgid))
                .col_expr(Column::Claim, Expr::value(Option::<String>::None))
                .col_expr(
                    Column::LeaseUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .col_expr(Column::UpdatedAt, Expr::value(now))
                .filter(Column::Id.eq(id.to_string()))
                .filter(Column::Claim.eq(token))
                .exec(txn)
                .await?;
            if r.rows_affected == 0 {
                return Err(SettleError::ClaimLost(id.to_string()));
            }
            Ok(())
        })
    })
    .await
}

/// Has the notification of message `id` been settled for good?
pub async fn settled(db: &DatabaseConnection, id: Uuid) -> Result<bool, DbErr> {
    inbox::seen(db, CONSUMER, id).await
}

/// One notification by id, within `tenant_id`.
pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    id: &str,
) -> Result<Option<Notification>, DbErr> {
    Ok(Entity::find()
        .filter(Column::TenantId.eq(tenant_id))
        .filter(Column::Id.eq(id))
        .one(db)
        .await?
        .map(Notification::from))
}

/// A rep's inbox: the notifications for rep `user_id` of corp `corp_id` in `tenant_id`, newest
/// first, a page of `req` (parse it with [`INBOX_LIST`]:
/// `PageReq::parse(INBOX_LIST, cursor, limit)`). Every status is listed (a skipped or failed
/// notification is still news for the rep).
pub async fn inbox(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    corp_id: &str,
    user_id: &str,
    req: &PageReq<i64>,
) -> Result<Page<Notification>, DbErr> {
    let mut q = Entity::find()
        .filter(Column::TenantId.eq(tenant_id))
        .filter(Column::CorpId.eq(corp_id))
        .filter(Column::UserId.eq(user_id));
    if let Some(after) = req.after {
        q = q.filter(Column::Seq.lt(after));
    }
    let rows = q
        .order_by_desc(Column::Seq)
        .limit(req.fetch())
        .all(db)
        .await?;
    let page = req.page(rows, |r| r.seq);
    Ok(Page {
        items: page.items.into_iter().map(Notification::from).collect(),
        next_cursor: page.next_cursor,
    })
}

#[derive(DeriveIden)]
enum LeadNotifications {
    Table,
    Seq,
    Id,
    TenantId,
    CorpId,
    UserId,
    ExternalUserid,
    ProfileId,
    TriggerId,
    Title,
    Description,
    Url,
    Status,
    Reason,
    Attempts,
    Msgid,
    Claim,
    LeaseUntil,
    CreatedAt,
    UpdatedAt,
}

/// Creates `lead_notifications`.
pub struct CreateLeadNotifications;

impl MigrationName for CreateLeadNotifications {
    fn name(&self) -> &str {
        "m20260301_000002_create_lead_notifications"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateLeadNotifications {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use LeadNotifications as N;
        m.create_table(
            Table::create()
                .table(N::Table)
                .if_not_exists()
                .col(id_col(N::Seq))
                .col(str_col(N::Id, 36))
                .col(str_col(N::TenantId, 64))
                .col(opt_str(N::CorpId, 64))
                .col(opt_str(N::UserId, 64))
                .col(opt_str(N::ExternalUserid, 128))
                .col(str_col(N::ProfileId, 64))
                .col(str_col(N::TriggerId, 64))
                .col(str_col(N::Title, 255))
                .col(ColumnDef::new(N::Description).text().not_null())
                .col(ColumnDef::new(N::Url).text().not_null())
                .col(str_col(N::Status, 16))
                .col(opt_str(N::Reason, 32))
                .col(ColumnDef::new(N::Attempts).text().not_null())
                .col(opt_str(N::Msgid, 128))
                .col(opt_str(N::Claim, 36))
                .col(
                    ColumnDef::new(N::LeaseUntil)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ts_col(N::CreatedAt))
                .col(ts_col(N::UpdatedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_lead_notifications_id",
            N::Table,
            vec![N::Id.into_iden()],
            true,
        )
        .await?;
        index(
            m,
            "ix_lead_notifications_rep",
            N::Table,
            vec![
                N::TenantId.into_iden(),
                N::CorpId.into_iden(),
                N::UserId.into_iden(),
                N::Seq.into_iden(),
            ],
            false,
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(LeadNotifications::Table).to_owned())
            .await
    }
}
