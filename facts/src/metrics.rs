//! The metric names the facts projection records (in tagging-svc and scoring-svc, which each
//! keep one): the daily roll of the rolling behaviour counters.
//!
//! [`describe`] gives each its HELP text; a role keeping a projection calls it once at start.

/// Rolls of a tenant's rolling behaviour counters, by `how` (`step`: one day forward;
/// `rebuild`: rebuilt from the buckets).
pub const ROLLS: &str = "scrm_facts_rolls_total";

/// Describes the projection's metrics. Call once after the recorder is installed (a description
/// given before is lost).
pub fn describe() {
    metrics::describe_counter!(
        ROLLS,
        "Rolls of a tenant's rolling behaviour counters, by how (step, rebuild)"
    );
}
