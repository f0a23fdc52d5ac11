//! The scheduled refresh of saved segments: a supervised task that every [`POLL`] takes the due
//! ones one at a time ([`saved::refresh_due`]: claimed by a conditional UPDATE, so replicas share
//! the work and never count one twice at once) until none is left, beating between segments so
//! readiness sees a stalled pass; then prunes size history past its retention.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::saved;
use crate::store::tagger::Tagger;

/// How often the task looks for due segments (the shortest interval is 5 minutes).
pub const POLL: Duration = Duration::from_secs(30);
/// Size-history rows past their retention deleted per pass at most.
const PRUNE_BATCH: u64 = 5_000;
/// No beat for this long: the pass is stalled (one count of a large segment takes seconds).
pub const DEADLINE: Duration = Duration::from_secs(600);

/// Refreshes due saved segments until `shutdown`.
pub async fn run(tagger: Tagger, shutdown: CancellationToken, beat: platform::tasks::Beat) {
    loop {
        beat.beat();
        while !shutdown.is_cancelled() {
            match saved::refresh_due(&tagger, 1).await {
                Ok(0) => break,
                Ok(_) => beat.beat(),
                Err(e) => {
                    tracing::warn!(error = %e, "Saved segment refresh pass failed; next pass retries");
                    break;
                }
            }
        }
        let before = tagger.clock.now() - chrono::Duration::days(saved::HISTORY_DAYS);
        match saved::prune_sizes(&tagger.db, before, PRUNE_BATCH).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                rows = n,
                "Pruned saved-segment size history past its retention"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "Pruning saved-segment size history failed; next pass retries")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
