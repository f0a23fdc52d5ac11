//! The metric names the gateway records: WeChat callbacks and their publishing, tracked events,
//! token requests from the services, console logins and the sidebar. The lead notifications'
//! own (`scrm_gateway_notify_*`) live with them in [`crate::notify`].
//!
//! [`describe`] gives each its HELP text; [`crate::run`] calls it once at start.

use metrics::Unit;

/// WeChat callbacks taken, by `channel` (`oa`, `mp`, `wecom`), event `type` and `outcome`
/// (`published`, `duplicate`).
pub const CALLBACKS: &str = "scrm_gateway_callbacks_total";
/// WeChat callbacks refused, by `channel` and `reason` (the refusal's code).
pub const CALLBACKS_REJECTED: &str = "scrm_gateway_callbacks_rejected_total";
/// Events not published again because they were published before, by `channel`.
pub const DUPLICATES: &str = "scrm_gateway_duplicates_total";
/// Duration of publishing events until the bus confirmed them, by `channel`.
pub const PUBLISH_SECONDS: &str = "scrm_gateway_publish_seconds";
/// Publishes that failed or ran out of their budget, by `channel`.
pub const PUBLISH_FAILED: &str = "scrm_gateway_publish_failed_total";
/// Tracked events accepted and published.
pub const TRACK_ACCEPTED: &str = "scrm_gateway_track_accepted_total";
/// Tracked events rejected one by one in a batch, by `reason` (the rejection's code).
pub const TRACK_REJECTED: &str = "scrm_gateway_track_rejected_total";
/// Whole track batches refused, by `reason` (`wechat_subject`: a write key named a WeChat
/// identity).
pub const TRACK_REFUSED: &str = "scrm_gateway_track_refused_total";
/// Token requests from the services, by `kind` (`oa`, `mp`, `wecom`, `other`) and `outcome`.
pub const TOKEN_REQUESTS: &str = "scrm_gateway_token_requests_total";
/// Console password logins, by `outcome` (`ok`, `refused`, `throttled`).
pub const LOGINS: &str = "scrm_gateway_logins_total";
/// Reps signed in to the sidebar.
pub const SIDEBAR_SIGN_INS: &str = "scrm_sidebar_sign_ins_total";
/// Sidebar requests refused, by `reason` (`not_your_customer`).
pub const SIDEBAR_REFUSED: &str = "scrm_sidebar_refused_total";
/// Export jobs ended, by `outcome` (`done`, `failed`).
pub const EXPORT_JOBS: &str = "scrm_gateway_export_jobs_total";
/// Bytes written to export files.
pub const EXPORT_BYTES: &str = "scrm_gateway_export_bytes_total";
/// Legacy `encrypted_data` phone answers refused, by `reason` (the answer's error code).
pub const MP_LEGACY_PHONE_REFUSED: &str = "scrm_gateway_mp_legacy_phone_refused_total";

/// Describes every metric of the gateway, the lead notifications' included. Call once after the
/// recorder is installed (a description given before is lost).
pub fn describe() {
    metrics::describe_counter!(
        CALLBACKS,
        "WeChat callbacks taken, by channel, event type and outcome (published, duplicate)"
    );
    metrics::describe_counter!(
        CALLBACKS_REJECTED,
        "WeChat callbacks refused, by channel and reason"
    );
    metrics::describe_counter!(
        DUPLICATES,
        "Events not published again because they were published before, by channel"
    );
    metrics::describe_histogram!(
        PUBLISH_SECONDS,
        Unit::Seconds,
        "Duration of publishing events until the bus confirmed them, by channel"
    );
    metrics::describe_counter!(
        PUBLISH_FAILED,
        "Event publishes that failed or ran out of their budget, by channel"
    );
    metrics::describe_counter!(TRACK_ACCEPTED, "Tracked events accepted and published");
    metrics::describe_counter!(
        MP_LEGACY_PHONE_REFUSED,
        "Legacy encrypted_data phone answers refused, by reason"
    );
    metrics::describe_counter!(
        TRACK_REJECTED,
        "Tracked events rejected within a batch, by reason"
    );
    metrics::describe_counter!(
        TRACK_REFUSED,
        "Track batches refused as a whole, by reason (wechat_subject)"
    );
    metrics::describe_counter!(
        TOKEN_REQUESTS,
        "WeChat token requests from the services, by kind and outcome"
    );
    metrics::describe_counter!(
        LOGINS,
        "Console password logins, by outcome (ok, refused, throttled)"
    );
    metrics::describe_counter!(SIDEBAR_SIGN_INS, "Reps signed in to the sidebar");
    metrics::describe_counter!(
        SIDEBAR_REFUSED,
        "Sidebar requests refused, by reason (not_your_customer)"
    );
    metrics::describe_counter!(EXPORT_JOBS, "Export jobs ended, by outcome (done, failed)");
    metrics::describe_counter!(EXPORT_BYTES, "Bytes written to export files");
    crate::notify::describe_metrics();
}
