//! The metric names identity-svc records: events resolved and enrichments applied, merge
//! refusals, data-quality issues, profile updates, manual merges and notes, and the WeChat
//! lookups that enrich profiles.
//!
//! [`describe`] gives each its HELP text; [`crate::run`] calls it once at start.

use metrics::Unit;

/// Channel events resolved, by `outcome` (`created`, `attached`, `merged`, `no_identifiers`,
/// `group`).
pub const EVENTS: &str = "scrm_identity_events_total";
/// Enrichments (WeChat lookups' answers) applied to a profile, by `outcome` (`created`,
/// `attached`, `merged`).
pub const ENRICHMENTS: &str = "scrm_identity_enrichments_total";
/// Merges refused by a guard, automatic or manual, by `reason`.
pub const MERGE_REFUSALS: &str = "scrm_identity_merge_refusals_total";
/// Sensitive identifiers dropped because no personal-data key is configured.
pub const SENSITIVE_DROPPED: &str = "scrm_identity_sensitive_dropped_total";
/// Data-quality issues recorded, by `reason`.
pub const DATA_QUALITY: &str = "scrm_identity_data_quality_total";
/// `profile.updated` events written (one per new profile version).
pub const PROFILE_UPDATES: &str = "scrm_identity_profile_updates_total";
/// Manual operations done, by `op` (`merge`, `unmerge`, `split`).
pub const MANUAL: &str = "scrm_identity_manual_total";
/// Notes written, by `op` (`add`, `edit`, `delete`).
pub const NOTES: &str = "scrm_identity_notes_total";
/// Enrichment requests handled, by `outcome` (`applied`, `duplicate`, `no_answer`, `retry`,
/// `parked`, `gave_up`, `disabled`).
pub const ENRICH_REQUESTS: &str = "scrm_identity_enrich_requests_total";
/// Enrichment lookups that waited for their app's WeChat call slot.
pub const ENRICH_RATE_WAITS: &str = "scrm_identity_enrich_rate_waits_total";
/// Calls to WeChat, by `endpoint` and `outcome` (`ok`, `not_found`, `transient`, `permanent`).
pub const WECHAT_CALLS: &str = "scrm_identity_wechat_calls_total";
/// Duration of calls to WeChat, by `endpoint`.
pub const WECHAT_CALL_SECONDS: &str = "scrm_identity_wechat_call_seconds";
/// WeChat lookups answered from the cache, by `endpoint`.
pub const WECHAT_CACHE_HITS: &str = "scrm_identity_wechat_cache_hits_total";

/// Describes every metric of identity-svc. Call once after the recorder is installed (a
/// description given before is lost).
pub fn describe() {
    metrics::describe_counter!(EVENTS, "Channel events resolved to a profile, by outcome");
    metrics::describe_counter!(
        ENRICHMENTS,
        "WeChat lookups' answers applied to a profile, by outcome"
    );
    metrics::describe_counter!(
        MERGE_REFUSALS,
        "Profile merges refused by a guard, by reason"
    );
    metrics::describe_counter!(
        SENSITIVE_DROPPED,
        "Sensitive identifiers dropped for want of a personal-data key"
    );
    metrics::describe_counter!(DATA_QUALITY, "Data-quality issues recorded, by reason");
    metrics::describe_counter!(
        PROFILE_UPDATES,
        "Profile versions published as profile.updated"
    );
    metrics::describe_counter!(
        MANUAL,
        "Manual identity operations done, by op (merge, unmerge, split)"
    );
    metrics::describe_counter!(NOTES, "Profile notes written, by op (add, edit, delete)");
    metrics::describe_counter!(
        ENRICH_REQUESTS,
        "Profile enrichment requests handled, by outcome"
    );
    metrics::describe_counter!(
        ENRICH_RATE_WAITS,
        "Enrichment lookups that waited for their app's WeChat call slot"
    );
    metrics::describe_counter!(
        WECHAT_CALLS,
        "Calls to WeChat for profile lookups, by endpoint and outcome"
    );
    metrics::describe_histogram!(
        WECHAT_CALL_SECONDS,
        Unit::Seconds,
        "Duration of calls to WeChat for profile lookups, by endpoint"
    );
    metrics::describe_counter!(
        WECHAT_CACHE_HITS,
        "WeChat profile lookups answered from the cache, by endpoint"
    );
}
