//! The metric names tagging-svc records: events tagged, rule evaluations and tag changes, the
//! scheduler's window checks and pruning, previews and bulk jobs, saved-segment refreshes, and
//! the WeCom corp-tag sync (mirror and write-back). The facts projection's own are in
//! [`facts::metrics`].
//!
//! [`describe`] gives each its HELP text (the projection's included); [`crate::run_with_clock`]
//! calls it once at start.

use metrics::Unit;

/// Events the consumer handled to the end, by `outcome` (`done`).
pub const EVENTS: &str = "scrm_tagging_events_total";
/// Rule evaluations for one profile and event.
pub const RULE_EVALUATIONS: &str = "scrm_tagging_rule_evaluations_total";
/// Chains of rules reading tags that did not settle within the round limit (cut short).
pub const CHAIN_CUT: &str = "scrm_tagging_chain_cut_total";
/// Tag memberships changed, by `change` (`added`, `removed`) and `source` (`manual`, `rule`,
/// `import`, `wecom`, `trigger`).
pub const TAG_CHANGES: &str = "scrm_tagging_tag_changes_total";
/// Rules skipped because their condition no longer expands (a referenced rule changed).
pub const RULES_INVALID: &str = "scrm_tagging_rules_invalid_total";
/// Profiles whose due time windows the scheduler re-checked.
pub const WINDOW_CHECKS: &str = "scrm_tagging_window_checks_total";
/// Behaviour events pruned past their retention.
pub const EVENTS_PRUNED: &str = "scrm_tagging_events_pruned_total";
/// Duration of segment previews (as the preview measured it).
pub const PREVIEW_SECONDS: &str = "scrm_tagging_preview_seconds";
/// Duration of analytics breakdowns (as the breakdown measured it).
pub const ANALYTICS_SECONDS: &str = "scrm_tagging_analytics_seconds";
/// Duration of bulk tagging jobs, by `kind`.
pub const JOB_SECONDS: &str = "scrm_tagging_job_seconds";
/// Refreshes of saved segments, by `cause` (`manual`, `scheduled`) and `outcome` (`ok`,
/// `invalid`: the saved condition no longer validates, `refused`: archived, `error`).
pub const SAVED_SEGMENT_REFRESHES: &str = "scrm_tagging_saved_segment_refreshes_total";
/// Duration of saved-segment refreshes, by `cause`.
pub const SAVED_SEGMENT_REFRESH_SECONDS: &str = "scrm_tagging_saved_segment_refresh_seconds";
/// Profiles entering or leaving real-time saved segments, by `change` (`entered`, `left`) and
/// `by` (`engine`: a profile's change, `build`: a segment's build job).
pub const SEGMENT_MEMBERSHIP_CHANGES: &str = "scrm_tagging_segment_membership_changes_total";
/// WeCom write-back items settled, by `outcome` (`done`, `retry`, `failed`, `superseded`,
/// `released`).
pub const WECOM_SYNC_ITEMS: &str = "scrm_tagging_wecom_sync_items_total";
/// WeCom calls, by `endpoint` and `outcome` (`ok`, `rate_limited`, `transient`, `permanent`).
pub const WECOM_CALLS: &str = "scrm_tagging_wecom_calls_total";
/// Duration of WeCom calls, by `endpoint`.
pub const WECOM_CALL_SECONDS: &str = "scrm_tagging_wecom_call_seconds";
/// Mirror syncs of a corp's tag library, by `outcome` (`ok`, `error`).
pub const WECOM_MIRROR_SYNCS: &str = "scrm_tagging_wecom_mirror_syncs_total";
/// `change_external_tag` events that asked for a mirror sync.
pub const WECOM_TAG_EVENTS: &str = "scrm_tagging_wecom_tag_events_total";

/// Describes every metric of tagging-svc and of its facts projection. Call once after the
/// recorder is installed (a description given before is lost).
pub fn describe() {
    metrics::describe_counter!(EVENTS, "Events the tagger handled, by outcome (done)");
    metrics::describe_counter!(
        RULE_EVALUATIONS,
        "Tag rule evaluations for one profile and event"
    );
    metrics::describe_counter!(
        CHAIN_CUT,
        "Chained tag rules that did not settle within the round limit"
    );
    metrics::describe_counter!(
        TAG_CHANGES,
        "Tag memberships changed, by change (added, removed) and source"
    );
    metrics::describe_counter!(
        RULES_INVALID,
        "Tag rules skipped because their condition no longer expands"
    );
    metrics::describe_counter!(
        WINDOW_CHECKS,
        "Profiles whose due time windows the scheduler re-checked"
    );
    metrics::describe_counter!(
        EVENTS_PRUNED,
        "Behaviour events pruned past their retention"
    );
    metrics::describe_histogram!(
        PREVIEW_SECONDS,
        Unit::Seconds,
        "Duration of segment previews"
    );
    metrics::describe_histogram!(
        ANALYTICS_SECONDS,
        Unit::Seconds,
        "Duration of analytics breakdowns of a tenant or a segment"
    );
    metrics::describe_histogram!(
        JOB_SECONDS,
        Unit::Seconds,
        "Duration of bulk tagging jobs, by kind"
    );
    metrics::describe_counter!(
        SAVED_SEGMENT_REFRESHES,
        "Refreshes of saved segments, by cause (manual, scheduled) and outcome (ok, invalid, refused, error)"
    );
    metrics::describe_histogram!(
        SAVED_SEGMENT_REFRESH_SECONDS,
        Unit::Seconds,
        "Duration of saved-segment refreshes, by cause"
    );
    metrics::describe_counter!(
        SEGMENT_MEMBERSHIP_CHANGES,
        "Profiles entering or leaving real-time saved segments, by change (entered, left) and by (engine, build)"
    );
    metrics::describe_counter!(
        WECOM_SYNC_ITEMS,
        "WeCom tag write-back items settled, by outcome"
    );
    metrics::describe_counter!(WECOM_CALLS, "WeCom calls, by endpoint and outcome");
    metrics::describe_histogram!(
        WECOM_CALL_SECONDS,
        Unit::Seconds,
        "Duration of WeCom calls, by endpoint"
    );
    metrics::describe_counter!(
        WECOM_MIRROR_SYNCS,
        "Mirror syncs of a corp's WeCom tag library, by outcome (ok, error)"
    );
    metrics::describe_counter!(
        WECOM_TAG_EVENTS,
        "WeCom change_external_tag events that asked for a mirror sync"
    );
    facts::metrics::describe();
}
