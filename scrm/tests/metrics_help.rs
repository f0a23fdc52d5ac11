//! Every role describes its metrics when it starts: after `scrm up`, the exposition carries a
//! `# HELP` line for the metrics of each crate that records some. Its own test binary, so the
//! process-wide recorder holds only what this test records.

use std::time::{Duration, Instant};

use scrm::up::{start_embedded, UpOptions};
use test_support::servers::unique;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_describes_its_metrics_at_start() {
    let dir = std::env::temp_dir().join(unique("metrics-help"));
    let running = start_embedded(UpOptions {
        data_dir: dir.clone(),
        bind: Some("127.0.0.1:0".parse().expect("address")),
        config: None,
        init_tracing: false,
        overrides: None,
    })
    .await
    .expect("scrm up starts");
    // The exposition shows a description next to a metric that has a value: give the sample one.
    let counters = [
        platform::metrics::HTTP_REQUESTS,
        platform::metrics::BUS_PARKED,
        platform::tasks::RESTARTS,
        facts::metrics::ROLLS,
        gateway::metrics::CALLBACKS,
        gateway::metrics::SIDEBAR_REFUSED,
        gateway::notify::SENT,
        identity_svc::metrics::EVENTS,
        tagging_svc::metrics::TAG_CHANGES,
        tagging_svc::metrics::WECOM_CALLS,
        scoring_svc::metrics::MESSAGES,
    ];
    for name in counters {
        metrics::counter!(name).increment(0);
    }
    let histograms = [
        platform::metrics::HTTP_REQUEST_SECONDS,
        gateway::metrics::PUBLISH_SECONDS,
        identity_svc::metrics::WECHAT_CALL_SECONDS,
        tagging_svc::metrics::JOB_SECONDS,
    ];
    for name in histograms {
        metrics::histogram!(name).record(0.0);
    }
    let handle = platform::telemetry::metrics();
    // The roles run in their own tasks: each describes its metrics as it starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        let text = handle.render();
        let missing: Vec<&str> = counters
            .iter()
            .chain(&histograms)
            .copied()
            .filter(|n| !text.contains(&format!("# HELP {n} ")))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    running.stop().await.expect("scrm stops");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(missing.is_empty(), "no HELP for {missing:?}");
}
