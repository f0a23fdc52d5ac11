//! Supervised background work: every long-running task of a role (outbox relays, consumers,
//! schedulers, sync workers) and every background job runs under [`Tasks`], which restarts it
//! with back-off when it fails (an error it cannot get past, a panic, an abort, or a loop that
//! returned before shutdown), tracks its liveness for `/readyz` and lets shutdown drain it.
//!
//! A loop proves it is alive by calling [`Beat::beat`] on every pass; one silent for longer
//! than its deadline is *stalled*: readiness fails (503) and `scrm_task_stalled_total` counts
//! it. A task that is down (between a failure and its restart) fails readiness too.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::task::{AbortHandle, JoinHandle};
use tokio_util::sync::CancellationToken;

/// Restarts by task name.
pub const RESTARTS: &str = "scrm_task_restarts_total";
/// Stalls (a beat missed its deadline) by task name.
pub const STALLED: &str = "scrm_task_stalled_total";
/// 1 while the task runs, 0 while it is down.
pub const UP: &str = "scrm_task_up";

/// First pause before a restart; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A run this long resets the back-off.
const STEADY: Duration = Duration::from_secs(60);

/// Describes the metrics (once, from [`crate::metrics::describe`] when the recorder is installed).
pub fn describe_metrics() {
    metrics::describe_counter!(RESTARTS, "Restarts of a supervised background task");
    metrics::describe_counter!(
        STALLED,
        "Times a supervised task was silent past its deadline"
    );
    metrics::describe_gauge!(
        UP,
        "1 while a supervised background task runs, 0 while it is down"
    );
}

#[derive(Debug)]
struct State {
    role: &'static str,
    deadline: Option<Duration>,
    beat: Instant,
    up: bool,
    failures: u64,
    last_error: Option<String>,
    abort: Option<AbortHandle>,
    stalled: bool,
}

#[derive(Default)]
struct Inner {
    states: Mutex<BTreeMap<String, State>>,
}

/// The supervised tasks of a process (cheap to clone; every clone sees the same tasks).
#[derive(Clone, Default)]
pub struct Tasks {
    inner: Arc<Inner>,
}

/// Handed to a supervised loop: [`Beat::beat`] on every pass tells the supervisor it is alive.
#[derive(Clone)]
pub struct Beat {
    name: Arc<str>,
    tasks: Option<Tasks>,
}

impl Beat {
    /// A beat nobody listens to (a loop run outside supervision, e.g. in a test).
    pub fn detached() -> Self {
        Beat {
            name: Arc::from(""),
            tasks: None,
        }
    }

    /// The loop is alive.
    pub fn beat(&self) {
        if let Some(t) = &self.tasks {
            if let Some(s) = t.lock().get_mut(&*self.name) {
                s.beat = Instant::now();
                s.stalled = false;
            }
        }
    }
}

/// How a task's run ended.
enum Ended {
    /// It finished (a one-shot task's success; for a loop, only with shutdown).
    Returned,
    Failed(String),
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, State>> {
        // A poisoned lock only means a panic elsewhere while holding it; the map stays usable.
        self.inner.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the loop `work` makes under supervision until `shutdown`: restarted with back-off
    /// whenever it fails or returns before shutdown. With a `deadline`, a loop that has not
    /// beaten for that long is stalled. The handle ends once the task stopped for good.
    pub fn spawn<F, Fut>(
        &self,
        role: &'static str,
        name: impl Into<String>,
        deadline: Option<Duration>,
        shutdown: CancellationToken,
        work: F,
    ) -> JoinHandle<()>
    where
        F: Fn(Beat) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.supervise(role, name.into(), deadline, false, shutdown, work)
    }

    /// Runs a job once under supervision: restarted with back-off only when it panics or is
    /// aborted (it must be safe to run again: a resumable job); done when it returns.
    pub fn spawn_once<F, Fut>(
        &self,
        role: &'static str,
        name: impl Into<String>,
        shutdown: CancellationToken,
        work: F,
    ) -> JoinHandle<()>
    where
        F: Fn(Beat) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.supervise(role, name.into(), None, true, shutdown, work)
    }

    fn supervise<F, Fut>(
        &self,
        role: &'static str,
        name: String,
        deadline: Option<Duration>,
        once: bool,
        shutdown: CancellationToken,
        work: F,
    ) -> JoinHandle<()>
    where
        F: Fn(Beat) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let tasks = self.clone();
        tasks.lock().insert(
            name.clone(),
            State {
                role,
                deadline,
                beat: Instant::now(),
                up: false,
                failures: 0,
                last_error: None,
                abort: None,
                stalled: false,
            },
        );
        let beat = Beat {
            name: Arc::from(name.as_str()),
            tasks: Some(tasks.clone()),
        };
        tokio::spawn(async move {
            let mut backoff = BACKOFF_START;
            loop {
                if shutdown.is_cancelled() {
                    break;
                }
                let run = tokio::spawn(work(beat.clone()));
                tasks.started(&name, run.abort_handle());
                let started = Instant::now();
                let ended = match run.await {
                    Ok(()) if once || shutdown.is_cancelled() => Ended::Returned,
                    Ok(()) => Ended::Failed("stopped on its own".into()),
                    Err(e) if e.is_panic() => Ended::Failed("panicked".into()),
                    Err(_) => Ended::Failed("aborted".into()),
                };
                let reason = match ended {
                    Ended::Returned => break,
                    Ended::Failed(reason) => reason,
                };
                if started.elapsed() >= STEADY {
                    backoff = BACKOFF_START;
                }
                tasks.failed(&name, &reason);
                tracing::error!(task = %name, error = %reason, restart_in = ?backoff, "Background task failed; restarting");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            tasks.lock().remove(&name);
            metrics::gauge!(UP, "task" => name.clone()).set(0.0);
        })
    }

    fn started(&self, name: &str, abort: AbortHandle) {
        if let Some(s) = self.lock().get_mut(name) {
            s.up = true;
            s.beat = Instant::now();
            s.stalled = false;
            s.abort = Some(abort);
        }
        metrics::gauge!(UP, "task" => name.to_string()).set(1.0);
    }

    fn failed(&self, name: &str, reason: &str) {
        if let Some(s) = self.lock().get_mut(name) {
            s.up = false;
            s.failures += 1;
            s.last_error = Some(reason.to_string());
            s.abort = None;
        }
        metrics::counter!(RESTARTS, "task" => name.to_string()).increment(1);
        metrics::gauge!(UP, "task" => name.to_string()).set(0.0);
    }

    /// Readiness of `role`'s tasks: an error naming every task that is down or stalled.
    pub fn check(&self, role: &str) -> Result<(), String> {
        let mut bad = Vec::new();
        for (name, s) in self.lock().iter_mut().filter(|(_, s)| s.role == role) {
            if !s.up {
                let why = s.last_error.as_deref().unwrap_or("not started yet");
                bad.push(format!("{name} is down ({why}; restarting)"));
                continue;
            }
            if let Some(d) = s.deadline.filter(|d| s.beat.elapsed() > *d) {
                if !s.stalled {
                    s.stalled = true;
                    metrics::counter!(STALLED, "task" => name.clone()).increment(1);
                }
                bad.push(format!("{name} has been silent for more than {d:?}"));
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }

    /// The names of the running supervised tasks.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Aborts the current run of task `name` (it is restarted like after a failure); `false`
    /// when no such task runs. For operators' tooling and tests.
    pub fn abort(&self, name: &str) -> bool {
        match self.lock().get(name).and_then(|s| s.abort.clone()) {
            Some(a) => {
                a.abort();
                true
            }
            None => false,
        }
    }
}

/// Waits for supervised tasks to stop (after shutdown was signalled), at most `within`.
pub async fn drain(handles: Vec<JoinHandle<()>>, within: Duration) {
    let all = futures_util::future::join_all(handles);
    if tokio::time::timeout(within, all).await.is_err() {
        tracing::warn!(within = ?within, "Background tasks still running after shutdown; leaving them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_failed_loop_restarts_and_a_silent_one_stalls() {
        let tasks = Tasks::new();
        let shutdown = CancellationToken::new();
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let h = tasks.spawn(
            "role",
            "role.loop",
            Some(Duration::from_millis(300)),
            shutdown.clone(),
            move |beat| {
                let n = r.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        panic!("first run dies");
                    }
                    // Beats once, then goes silent.
                    beat.beat();
                    std::future::pending::<()>().await;
                }
            },
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let down = tasks.check("role").unwrap_err();
        assert!(down.contains("role.loop is down (panicked"), "{down}");
        tokio::time::sleep(BACKOFF_START + Duration::from_millis(100)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(tasks.check("role"), Ok(()));
        assert_eq!(tasks.check("other"), Ok(()));
        tokio::time::sleep(Duration::from_millis(400)).await;
        let stalled = tasks.check("role").unwrap_err();
        assert!(stalled.contains("silent"), "{stalled}");
        assert!(tasks.abort("role.loop"));
        shutdown.cancel();
        drain(vec![h], Duration::from_secs(2)).await;
        assert!(tasks.names().is_empty());
    }

    #[tokio::test]
    async fn a_job_runs_once_and_again_only_after_a_panic() {
        let tasks = Tasks::new();
        let shutdown = CancellationToken::new();
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let h = tasks.spawn_once("role", "role.job", shutdown.clone(), move |_| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(n > 0, "first run dies");
            }
        });
        drain(vec![h], Duration::from_secs(5)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(tasks.names().is_empty());
    }
}
