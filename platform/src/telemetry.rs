//! Tracing (pretty on a terminal, JSON otherwise) and the process-wide Prometheus recorder.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global tracing subscriber. `SCRM_LOG` overrides the configured level. Calling it
/// twice keeps the first subscriber.
pub fn init_tracing(cfg: &TelemetryConfig) {
    let filter = std::env::var("SCRM_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&cfg.log_level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = match cfg.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often histogram samples are folded into their buckets. The recorder keeps every sample
/// until then (or until a scrape), so without it a process nobody scrapes grows without bound.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The process-wide Prometheus handle, installing the recorder on first use (and a thread that
/// folds histogram samples into buckets every second).
pub fn metrics() -> PrometheusHandle {
    METRICS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by a test harness); rendering then
            // shows only what this handle saw, which is still a valid exposition.
            let _ = metrics::set_global_recorder(recorder);
            crate::metrics::describe();
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "No metrics upkeep thread; histograms are folded only when scraped");
            }
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_folded_without_a_scrape() {
        let handle = metrics();
        metrics::histogram!("scrm_test_upkeep_seconds").record(0.002);
        // A thread names itself as it starts: look for a moment.
        let threads = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .expect("this test reads Linux's /proc")
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .collect()
        };
        let started = std::time::Instant::now();
        while !threads().iter().any(|n| n == "metrics-upkeep") {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "an upkeep thread runs: {:?}",
                threads()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = handle.render();
        assert!(
            text.contains("scrm_test_upkeep_seconds_bucket{le=\"0.0025\"} 1"),
            "{text}"
        );
    }
}
