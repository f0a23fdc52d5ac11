//! Saved segments (人群包): a tenant's named condition in the language of tag rules, kept with
//! its owner, a refresh mode (`realtime`: its members kept as profiles change, by the rule
//! engine; `scheduled` every `interval_minutes`; or `manual`), its size at the last refresh and
//! the history of those sizes. Counting, members and exports go through the same compiled SQL
//! over the facts projection as an unsaved preview ([`super::segments`]); a real-time segment's
//! members and size are read from what the engine keeps once its build job has filled it
//! ([`kept`]).
//!
//! Here: the definitions, their checks and how the API shows them. `stored` creates, reads,
//! changes, archives and lists them; `refresh` counts one now, records the size and claims the
//! scheduled ones that are due (one process per segment, by a conditional UPDATE of its claim);
//! `members` pages through the matching profiles by profile id; `rollup` keeps a scheduled
//! refresh's analytics breakdowns; `kept` holds a real-time segment's members (its build job is
//! `super::backfill`'s kind `segment`); `entities` and `migration` are the tables.

pub mod entities;
pub mod kept;
mod members;
pub mod migration;
mod refresh;
pub mod rollup;
mod stored;

use chrono::{DateTime, Duration, Utc};
use sea_orm::DbErr;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rules::{ConditionError, RuleError};
use entities::{segment, size};

pub use members::{
    ids_in_windows, kept_members as kept_page, members, Member, MembersPage, Shown, MEMBER_FIELDS,
};
pub use refresh::{
    claim_due, prune_sizes, refresh, refresh_due, sizes, Cause, Refreshed, HISTORY_DAYS, LEASE,
};
pub use stored::{archive, create, get, list, update};

/// Statuses: in use, or archived (kept with its history, no longer refreshed).
pub const ACTIVE: &str = "active";
pub const ARCHIVED: &str = "archived";
/// Refresh modes: `realtime` keeps the members as profiles change (the rule engine evaluates the
/// segment with the rules) and records its size on the schedule; `scheduled` counts the
/// condition every interval; `manual` when an operator asks.
pub const REALTIME: &str = "realtime";
pub const SCHEDULED: &str = "scheduled";
pub const MANUAL: &str = "manual";
/// Scheduled refreshes: at most every 5 minutes, hourly unless asked, at least every 30 days.
pub const MIN_INTERVAL_MINUTES: i64 = 5;
pub const DEFAULT_INTERVAL_MINUTES: i64 = 60;
pub const MAX_INTERVAL_MINUTES: i64 = 43_200;
/// Longest name and description, in characters.
pub const MAX_NAME: usize = 128;
pub const MAX_DESCRIPTION: usize = 1_000;

/// Why a saved-segment request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    /// The condition does not validate (or names a tag the tenant does not have), or a rule
    /// check refused a field: answered as a rule's condition is.
    #[error(transparent)]
    Condition(#[from] RuleError),
    /// A required field is absent or blank.
    #[error("`{0}` is required")]
    Missing(&'static str),
    #[error("`{field}`: {message}")]
    Field {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The saved condition no longer validates (a rule it reads was deleted or changed): it
    /// cannot be counted until it is edited.
    #[error("the saved condition no longer validates")]
    Stale(Vec<ConditionError>),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl SavedError {
    fn field(field: &'static str, message: impl Into<String>) -> Self {
        SavedError::Field {
            field,
            message: message.into(),
        }
    }
}

/// A new saved segment as an operator writes it (`tenant_id`, `operator` and `actor` come from
/// the credential).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSegment {
    pub name: Option<String>,
    pub description: Option<String>,
    pub condition: Option<Value>,
    /// `realtime`, `scheduled` (the default) or `manual`.
    pub refresh_mode: Option<String>,
    /// Minutes between scheduled refreshes (5..=43 200, default 60).
    pub interval_minutes: Option<i64>,
}

/// A change of a saved segment: the fields given are replaced. With `version`, the change is
/// made only to that version (else 409 `version_conflict`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub condition: Option<Value>,
    pub refresh_mode: Option<String>,
    pub interval_minutes: Option<i64>,
    /// `active` or `archived`.
    pub status: Option<String>,
    pub version: Option<i64>,
}

/// A saved segment as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SegmentView {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    pub owner: String,
    pub condition: Value,
    pub refresh_mode: String,
    /// A real-time segment's kept members: `building` until its build job has filled them for
    /// this version (members and size are counted from the condition meanwhile), then `ready`;
    /// null for other modes.
    pub members: Option<&'static str>,
    pub interval_minutes: i64,
    pub status: String,
    /// Profiles matching at the last refresh; null before the first one and after the
    /// condition changed.
    pub size: Option<i64>,
    pub refreshed_at: Option<DateTime<Utc>>,
    /// When the scheduler refreshes it next (null when manual or archived).
    pub next_refresh_at: Option<DateTime<Utc>>,
    /// Why the last refresh failed; null after a successful one.
    pub last_error: Option<String>,
    pub version: i64,
    pub updated_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

impl From<segment::Model> for SegmentView {
    fn from(s: segment::Model) -> Self {
        let members = match (
            kept_members(&s),
            s.refresh_mode == REALTIME && s.status == ACTIVE,
        ) {
            (true, _) => Some("ready"),
            (false, true) => Some("building"),
            _ => None,
        };
        SegmentView {
            members,
            condition: serde_json::from_str(&s.condition).unwrap_or(Value::Null),
            id: s.id,
            tenant_id: s.tenant_id,
            name: s.name,
            description: s.description,
            owner: s.owner,
            refresh_mode: s.refresh_mode,
            interval_minutes: s.interval_minutes,
            status: s.status,
            size: s.size,
            refreshed_at: s.refreshed_at,
            next_refresh_at: s.due_at,
            last_error: s.last_error,
            version: s.version,
            updated_by: s.updated_by,
            created_at: s.created_at,
            updated_at: s.updated_at,
            archived_at: s.archived_at,
        }
    }
}

/// One refresh in a segment's size history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SizeView {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub count: i64,
    /// `manual` or `scheduled`.
    pub cause: String,
    /// The operator of a manual refresh.
    pub actor: Option<String>,
    /// The segment's version that was counted.
    pub segment_version: i64,
    pub took_ms: i64,
}

impl From<size::Model> for SizeView {
    fn from(z: size::Model) -> Self {
        SizeView {
            id: z.id,
            at: z.at,
            count: z.count,
            cause: z.cause,
            actor: z.actor,
            segment_version: z.segment_version,
            took_ms: z.took_ms,
        }
    }
}

/// The segment's members are read from what the engine keeps: it is real-time, active, and its
/// build job has filled them for this version.
pub fn kept_members(s: &segment::Model) -> bool {
    s.refresh_mode == REALTIME && s.status == ACTIVE && s.members_version == Some(s.version)
}

/// A name as stored: trimmed, 1..=[`MAX_NAME`] characters.
fn name_of(name: &str) -> Result<String, SavedError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > MAX_NAME {
        return Err(SavedError::field(
            "name",
            format!("must be 1..={MAX_NAME} characters"),
        ));
    }
    Ok(n.to_string())
}

fn description_of(d: &str) -> Result<String, SavedError> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(SavedError::field(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(d.trim().to_string())
}

fn mode_of(mode: &str) -> Result<&'static str, SavedError> {
    match mode {
        REALTIME => Ok(REALTIME),
        SCHEDULED => Ok(SCHEDULED),
        MANUAL => Ok(MANUAL),
        _ => Err(SavedError::field(
            "refresh_mode",
            "must be `realtime`, `scheduled` or `manual`",
        )),
    }
}

fn interval_of(minutes: i64) -> Result<i64, SavedError> {
    if !(MIN_INTERVAL_MINUTES..=MAX_INTERVAL_MINUTES).contains(&minutes) {
        return Err(SavedError::field(
            "interval_minutes",
            format!("must be between {MIN_INTERVAL_MINUTES} and {MAX_INTERVAL_MINUTES}"),
        ));
    }
    Ok(minutes)
}

fn status_of(status: &str) -> Result<&'static str, SavedError> {
    match status {
        ACTIVE => Ok(ACTIVE),
        ARCHIVED => Ok(ARCHIVED),
        _ => Err(SavedError::field(
            "status",
            "must be `active` or `archived`",
        )),
    }
}

/// When the scheduler refreshes a segment next (a real-time one: records its size): never when
/// it is archived or manual; now when it was never counted (or its condition changed since);
/// else an interval after the last count.
pub fn next_due(
    status: &str,
    mode: &str,
    interval_minutes: i64,
    refreshed_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if status != ACTIVE || mode == MANUAL {
        return None;
    }
    Some(match refreshed_at {
        None => now,
        Some(at) => at + Duration::minutes(interval_minutes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn only_active_scheduled_segments_are_due_an_interval_after_their_last_count() {
        let now = at("2026-12-07T10:00:00Z");
        let last = at("2026-12-07T09:30:00Z");
        assert_eq!(next_due(ACTIVE, SCHEDULED, 60, None, now), Some(now));
        assert_eq!(
            next_due(ACTIVE, SCHEDULED, 60, Some(last), now),
            Some(at("2026-12-07T10:30:00Z"))
        );
        // Overdue stays overdue: the scheduler takes it at its next pass.
        assert_eq!(
            next_due(ACTIVE, SCHEDULED, 5, Some(last), now),
            Some(at("2026-12-07T09:35:00Z"))
        );
        assert_eq!(next_due(ACTIVE, MANUAL, 60, Some(last), now), None);
        assert_eq!(
            next_due(ACTIVE, REALTIME, 60, Some(last), now),
            Some(at("2026-12-07T10:30:00Z"))
        );
        assert_eq!(next_due(ARCHIVED, SCHEDULED, 60, Some(last), now), None);
    }

    #[test]
    fn fields_are_checked_naming_the_field() {
        let field = |e: SavedError| match e {
            SavedError::Field { field, .. } => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(name_of("  Hangzhou leads ").unwrap(), "Hangzhou leads");
        assert_eq!(field(name_of("   ").unwrap_err()), "name");
        assert_eq!(field(name_of(&"x".repeat(129)).unwrap_err()), "name");
        assert_eq!(name_of(&"人".repeat(128)).unwrap().chars().count(), 128);
        assert_eq!(
            field(description_of(&"d".repeat(1001)).unwrap_err()),
            "description"
        );
        assert_eq!(mode_of("manual").unwrap(), MANUAL);
        assert_eq!(mode_of("realtime").unwrap(), REALTIME);
        assert_eq!(field(mode_of("hourly").unwrap_err()), "refresh_mode");
        assert_eq!(interval_of(5).unwrap(), 5);
        assert_eq!(field(interval_of(4).unwrap_err()), "interval_minutes");
        assert_eq!(field(interval_of(43_201).unwrap_err()), "interval_minutes");
        assert_eq!(field(status_of("deleted").unwrap_err()), "status");
    }
}
