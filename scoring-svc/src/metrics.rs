//! The metric names scoring-svc records: messages scored, trigger firings, manual stage moves and
//! SLA breaches. The facts projection's own are in [`facts::metrics`].
//!
//! [`describe`] gives each its HELP text (the projection's included); [`crate::run_with_clock`]
//! calls it once at start.

/// Bus messages the scorer handled, by `outcome` (`applied`, `duplicate`, `ignored`).
pub const MESSAGES: &str = "scrm_scoring_messages_total";
/// Threshold triggers fired (one per firing recorded).
pub const TRIGGER_FIRED: &str = "scrm_scoring_trigger_fired_total";
/// Manual lead-stage moves, by `outcome` (`moved`, `refused`: a guard of the stage machine).
pub const MANUAL_MOVES: &str = "scrm_scoring_manual_moves_total";
/// Stage SLAs breached (one `lead.sla_breached` event each).
pub const SLA_BREACHED: &str = "scrm_scoring_sla_breached_total";

/// Describes every metric of scoring-svc and of its facts projection. Call once after the
/// recorder is installed (a description given before is lost).
pub fn describe() {
    metrics::describe_counter!(
        MESSAGES,
        "Bus messages the scorer handled, by outcome (applied, duplicate, ignored)"
    );
    metrics::describe_counter!(TRIGGER_FIRED, "Threshold triggers fired");
    metrics::describe_counter!(
        MANUAL_MOVES,
        "Manual lead-stage moves, by outcome (moved, refused)"
    );
    metrics::describe_counter!(SLA_BREACHED, "Lead-stage SLAs breached");
    facts::metrics::describe();
}
