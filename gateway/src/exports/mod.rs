//! Export jobs: a long audience export run in the background instead of on the request, with
//! progress an operator can poll and a file to download once done (kept for a retention,
//! then dropped).
//!
//! Owns the `export_jobs` / `export_parts` tables ([`store`]) and the runner ([`Exports`]),
//! which reads a job's pages from a [`Source`] (the audience export's: tagging's members and
//! identity's reach, `crate::api::admin::audience`) and appends each as a part with the job's
//! progress in one transaction. A process that stops mid-job leaves its claim to run out; the
//! next pass of any gateway takes the job over at the page it had reached, so a file is never
//! missing a page nor holds one twice. Must not touch other services' data: it reads them only
//! through the source, as the principal that asked.

pub mod store;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use tokio_util::sync::CancellationToken;

use store::{job, Written};

/// A page of a job's output.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub body: Vec<u8>,
    /// Members read, rows written.
    pub members: u64,
    pub rows: u64,
    /// Where the next page starts; `None` on the last.
    pub next: Option<String>,
}

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// For good (the segment was archived or deleted, the principal may no longer read it): the
    /// job fails with this reason.
    #[error("{0}")]
    Refused(String),
    /// For now (a service is down): tried again.
    #[error("{0}")]
    Unavailable(String),
}

/// Where a job's output comes from.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// What precedes the first page (a CSV header), if anything.
    async fn header(&self, job: &job::Model) -> Result<Option<Vec<u8>>, SourceError>;
    /// The page after the profile id `after`.
    async fn page(&self, job: &job::Model, after: Option<&str>) -> Result<Page, SourceError>;
}

/// How jobs run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a process holds a job it runs without writing a page.
    pub lease: Duration,
    /// How long a done job's file is kept.
    pub retention: Duration,
    /// Attempts at a page whose services are unavailable before the job fails.
    pub attempts: u32,
    /// The wait between those attempts.
    pub backoff: StdDuration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lease: Duration::seconds(120),
            retention: Duration::hours(72),
            attempts: 5,
            backoff: StdDuration::from_secs(2),
        }
    }
}

/// The runner of export jobs.
#[derive(Clone)]
pub struct Exports {
    pub db: DatabaseConnection,
    source: Arc<dyn Source>,
    settings: Settings,
    tasks: platform::tasks::Tasks,
    shutdown: CancellationToken,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    Done,
    Failed,
    /// Another process holds it, or it is no longer open.
    NotMine,
    /// The process is stopping: the job is left for the next pass.
    Stopped,
}

impl Exports {
    pub fn new(
        db: DatabaseConnection,
        source: Arc<dyn Source>,
        settings: Settings,
        tasks: platform::tasks::Tasks,
        shutdown: CancellationToken,
    ) -> Self {
        Exports {
            db,
            source,
            settings,
            tasks,
            shutdown,
        }
    }

    /// Runs the job `id` in the background.
    pub fn start(&self, id: &str) {
        let (me, id) = (self.clone(), id.to_string());
        self.tasks.spawn_once(
            crate::ROLE,
            format!("gateway.export.{id}"),
            self.shutdown.clone(),
            move |_| {
                let (me, id) = (me.clone(), id.clone());
                async move {
                    if let Err(e) = me.run(&id).await {
                        tracing::error!(job_id = %id, error = %e, "Export job stopped on a storage error; it is taken over after its lease");
                    }
                }
            },
        );
    }

    /// One pass: starts the open jobs no live process holds, drops expired files. Returns the
    /// jobs started.
    pub async fn pass(&self) -> Result<usize, DbErr> {
        let now = Utc::now();
        let ids = store::claimable(&self.db, now, 20).await?;
        for id in &ids {
            self.start(id);
        }
        let pruned = store::prune(&self.db, now).await?;
        if pruned > 0 {
            tracing::info!(pruned, "Expired export files dropped");
        }
        Ok(ids.len())
    }

    /// Runs the job `id` to its end here, if this process can take it.
    pub async fn run(&self, id: &str) -> Result<Ran, DbErr> {
        let lease = self.settings.lease;
        let Some(mut j) = store::claim(&self.db, id, Utc::now(), lease).await? else {
            return Ok(Ran::NotMine);
        };
        let started = std::time::Instant::now();
        loop {
            if self.shutdown.is_cancelled() {
                store::release(&self.db, &j.id).await?;
                return Ok(Ran::Stopped);
            }
            let header = if j.parts == 0 {
                match self.source.header(&j).await {
                    Ok(h) => h,
                    Err(e) => return self.failed(&j, &e.to_string()).await,
                }
            } else {
                None
            };
            let (written, last) = match header {
                Some(body) => (
                    Written {
                        body,
                        cursor: j.cursor.clone(),
                        ..Written::default()
                    },
                    false,
                ),
                None => match self.page(&j).await {
                    Ok(p) => (
                        Written {
                            body: p.body,
                            members: p.members,
                            rows: p.rows,
                            cursor: p.next.clone(),
                        },
                        p.next.is_none(),
                    ),
                    Err(e) => return self.failed(&j, &e.to_string()).await,
                },
            };
            let now = Utc::now();
            if !store::append(&self.db, &j.id, j.parts, &written, now, lease).await? {
                return Ok(Ran::NotMine);
            }
            metrics::counter!(crate::metrics::EXPORT_BYTES).increment(written.body.len() as u64);
            j.parts += 1;
            j.cursor = written.cursor;
            if last {
                let kept = now + self.settings.retention;
                if !store::finish(&self.db, &j.id, j.parts, now, kept).await? {
                    return Ok(Ran::NotMine);
                }
                metrics::counter!(crate::metrics::EXPORT_JOBS, "outcome" => "done").increment(1);
                tracing::info!(job_id = %j.id, parts = j.parts, secs = started.elapsed().as_secs_f64(), "Export job done");
                return Ok(Ran::Done);
            }
        }
    }

    /// The job's next page, tried again while its services are unavailable.
    async fn page(&self, j: &job::Model) -> Result<Page, SourceError> {
        let mut tries = 0;
        loop {
            match self.source.page(j, j.cursor.as_deref()).await {
                Err(SourceError::Unavailable(why)) if tries + 1 < self.settings.attempts => {
                    tries += 1;
                    tracing::warn!(job_id = %j.id, attempt = tries, why = %why, "Export page unavailable; trying again");
                    tokio::time::sleep(self.settings.backoff).await;
                }
                other => return other,
            }
        }
    }

    async fn failed(&self, j: &job::Model, why: &str) -> Result<Ran, DbErr> {
        tracing::warn!(job_id = %j.id, why = %why, "Export job failed");
        metrics::counter!(crate::metrics::EXPORT_JOBS, "outcome" => "failed").increment(1);
        store::fail(&self.db, &j.id, why, Utc::now()).await?;
        Ok(Ran::Failed)
    }
}
