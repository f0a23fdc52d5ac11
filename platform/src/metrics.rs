//! The metric names the shared plumbing records in every role: bus publishing and settling,
//! consumers, HTTP requests, service credentials, the outbox relay, the inbox and transaction
//! reruns. The supervised tasks' own (`scrm_task_*`) live with them in [`crate::tasks`].
//!
//! [`describe`] gives each its HELP text; [`crate::telemetry::metrics`] calls it once, when it
//! installs the recorder.

use metrics::Unit;

/// Messages a consumer's handler settled successfully (acknowledged), by `consumer`.
pub const CONSUMER_HANDLED: &str = "scrm_consumer_handled_total";
/// Handler failures, by `consumer` and `kind` (`transient`: retried or parked after the last
/// attempt; `invalid`: parked at once).
pub const CONSUMER_FAILED: &str = "scrm_consumer_failed_total";
/// Messages handed to a batch handler at once, by `consumer`.
pub const CONSUMER_BATCH_SIZE: &str = "scrm_consumer_batch_size";
/// Messages published to the bus (a batch counts each of its messages).
pub const BUS_PUBLISHED: &str = "scrm_bus_published_total";
/// Publishes the bus did not take (broker error, or no room before the timeout).
pub const BUS_PUBLISH_FAILED: &str = "scrm_bus_publish_failed_total";
/// Duration of a single publish to the broker.
pub const BUS_PUBLISH_SECONDS: &str = "scrm_bus_publish_seconds";
/// Deliveries put back for a later retry.
pub const BUS_RETRIED: &str = "scrm_bus_retried_total";
/// Messages parked: attempts used up, invalid, or not an envelope at all.
pub const BUS_PARKED: &str = "scrm_bus_parked_total";
/// HTTP requests served, by `route` (the route pattern) and `status`.
pub const HTTP_REQUESTS: &str = "scrm_http_requests_total";
/// Duration of HTTP requests, by `route`.
pub const HTTP_REQUEST_SECONDS: &str = "scrm_http_request_seconds";
/// Internal requests refused for their service credential, by `reason` (the error code).
pub const SERVICE_CREDENTIAL_REFUSED: &str = "scrm_service_credential_refused_total";
/// Outbox rows published to the bus and deleted.
pub const OUTBOX_RELAYED: &str = "scrm_outbox_relayed_total";
/// Outbox relay passes whose publish failed (the rows stay for the next pass).
pub const OUTBOX_RELAY_FAILED: &str = "scrm_outbox_relay_failed_total";
/// Transactions run again after contention (deadlock, lock wait), by `consumer` (the operation).
pub const TX_RETRIES: &str = "scrm_tx_retries_total";
/// Messages the inbox had already recorded as processed (skipped as duplicates).
pub const INBOX_DUPLICATES: &str = "scrm_inbox_duplicates_total";

/// Describes every metric of the shared plumbing, the supervised tasks' included. Call once after
/// the recorder is installed (a description given before is lost).
pub fn describe() {
    metrics::describe_counter!(
        CONSUMER_HANDLED,
        "Bus messages a consumer handled and acknowledged"
    );
    metrics::describe_counter!(
        CONSUMER_FAILED,
        "Bus messages a consumer's handler failed on, by kind (transient, invalid)"
    );
    metrics::describe_histogram!(
        CONSUMER_BATCH_SIZE,
        Unit::Count,
        "Messages handed to a consumer's batch handler at once"
    );
    metrics::describe_counter!(BUS_PUBLISHED, "Messages published to the bus");
    metrics::describe_counter!(
        BUS_PUBLISH_FAILED,
        "Publishes the bus did not take (broker error or no room in time)"
    );
    metrics::describe_histogram!(
        BUS_PUBLISH_SECONDS,
        Unit::Seconds,
        "Duration of a publish to the broker"
    );
    metrics::describe_counter!(BUS_RETRIED, "Bus deliveries put back for a later retry");
    metrics::describe_counter!(
        BUS_PARKED,
        "Bus messages parked (attempts used up, invalid or unparseable)"
    );
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests served, by route and status");
    metrics::describe_histogram!(
        HTTP_REQUEST_SECONDS,
        Unit::Seconds,
        "Duration of HTTP requests, by route"
    );
    metrics::describe_counter!(
        SERVICE_CREDENTIAL_REFUSED,
        "Internal requests refused for a missing or invalid service credential, by reason"
    );
    metrics::describe_counter!(OUTBOX_RELAYED, "Outbox rows published to the bus");
    metrics::describe_counter!(
        OUTBOX_RELAY_FAILED,
        "Outbox relay passes whose publish failed (rows kept for the next pass)"
    );
    metrics::describe_counter!(
        TX_RETRIES,
        "Transactions run again after contention, by operation"
    );
    metrics::describe_counter!(
        INBOX_DUPLICATES,
        "Messages skipped because the inbox had already processed them"
    );
    crate::tasks::describe_metrics();
}
