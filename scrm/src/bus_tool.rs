//! `scrm bus parked` and `scrm bus replay`: the parked messages of the consumer groups, and
//! sending them back. In production (a config file or `SCRM_BUS__URL`) the tool talks to
//! RabbitMQ itself; in embedded mode the in-process bus lives in the running `scrm up`, so it
//! asks that process's gateway (`/internal/v1/bus/…`, with the data dir's internal key).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use platform::bus::{Bus, Parked};
use serde::Deserialize;
use serde_json::json;

use crate::settings::{self, Mode, Settings};

/// Where the bus is.
pub enum Target {
    /// A broker this process connects to.
    Broker(Arc<dyn Bus>),
    /// A running `scrm up`: its gateway's URL and internal key.
    Embedded { url: String, key: String },
}

/// A group's queue and parked messages.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct GroupReport {
    pub group: String,
    pub queued: u64,
    pub parked_count: u64,
    pub parked: Vec<Parked>,
}

impl Target {
    /// Production when a config file is given or `SCRM_BUS__URL` is set, else the `scrm up`
    /// at `url` with `key`, or the internal key kept in `data_dir`.
    pub async fn resolve(
        config: Option<&Path>,
        url: &str,
        data_dir: &Path,
        key: Option<&str>,
    ) -> anyhow::Result<Self> {
        if config.is_some() || std::env::var_os("SCRM_BUS__URL").is_some() {
            let s = Settings::load(
                Mode::Production,
                config,
                settings::production_defaults(),
                None,
            )?;
            let bus = platform::bus::connect(&s.bus)
                .await
                .context("cannot connect to the message broker (bus)")?;
            return Ok(Target::Broker(bus));
        }
        if let Some(key) = key {
            return Ok(Target::Embedded {
                url: url.trim_end_matches('/').to_string(),
                key: key.to_string(),
            });
        }
        let file: PathBuf = data_dir.join("internal.key");
        let key = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "embedded mode: cannot read {} (is `scrm up --data-dir {}` the process to ask? \
                 For production pass --config)",
                file.display(),
                data_dir.display()
            )
        })?;
        Ok(Target::Embedded {
            url: url.trim_end_matches('/').to_string(),
            key: key.trim().to_string(),
        })
    }

    /// Every system group's report (or `group`'s), with up to `limit` parked messages each.
    pub async fn parked(
        &self,
        group: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Vec<GroupReport>> {
        match self {
            Target::Broker(bus) => {
                let names: Vec<String> = match group {
                    Some(g) => vec![g.to_string()],
                    None => proto::routing::GROUPS
                        .iter()
                        .map(|g| g.name.to_string())
                        .collect(),
                };
                let mut out = Vec::new();
                for g in names {
                    let ctx = || format!("group `{g}`");
                    out.push(GroupReport {
                        queued: bus.queue_depth(&g).await.with_context(ctx)?,
                        parked_count: bus.parked_count(&g).await.with_context(ctx)?,
                        parked: bus.parked(&g, limit).await.with_context(ctx)?,
                        group: g,
                    });
                }
                Ok(out)
            }
            Target::Embedded { url, key } => {
                let mut req = reqwest::Client::new()
                    .get(format!("{url}{}", gateway::api::bus::PARKED_PATH))
                    .bearer_auth(key)
                    .query(&[("limit", limit.to_string())]);
                if let Some(g) = group {
                    req = req.query(&[("group", g)]);
                }
                #[derive(Deserialize)]
                struct Answer {
                    groups: Vec<GroupReport>,
                }
                let a: Answer = answer(req.send().await, url).await?;
                Ok(a.groups)
            }
        }
    }

    /// Sends parked messages of `group` back: one by id, or all. Returns how many.
    pub async fn replay(&self, group: &str, id: Option<uuid::Uuid>) -> anyhow::Result<u64> {
        match self {
            Target::Broker(bus) => match id {
                Some(id) => {
                    if !bus.replay_parked_one(group, id).await? {
                        bail!("no parked message {id} in group `{group}`");
                    }
                    Ok(1)
                }
                None => Ok(bus.replay_parked(group).await?),
            },
            Target::Embedded { url, key } => {
                let body = match id {
                    Some(id) => json!({"group": group, "id": id}),
                    None => json!({"group": group, "all": true}),
                };
                let req = reqwest::Client::new()
                    .post(format!("{url}{}", gateway::api::bus::REPLAY_PATH))
                    .bearer_auth(key)
                    .json(&body);
                #[derive(Deserialize)]
                struct Answer {
                    replayed: u64,
                }
                let a: Answer = answer(req.send().await, url).await?;
                Ok(a.replayed)
            }
        }
    }
}

/// The gateway's JSON answer, or its error's message.
async fn answer<T: serde::de::DeserializeOwned>(
    sent: reqwest::Result<reqwest::Response>,
    url: &str,
) -> anyhow::Result<T> {
    let r =
        sent.with_context(|| format!("cannot reach `scrm up` at {url} (is it running? --url)"))?;
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    if !status.is_success() {
        return Err(anyhow!(
            "{status}: {}",
            body["message"].as_str().unwrap_or("no message")
        ));
    }
    Ok(serde_json::from_value(body)?)
}

/// The reports as text: per group, a line of counts, then one line per parked message.
pub fn render(reports: &[GroupReport]) -> String {
    let mut out = String::new();
    for r in reports {
        out.push_str(&format!(
            "{}: {} queued, {} parked\n",
            r.group, r.queued, r.parked_count
        ));
        for p in &r.parked {
            let id = p.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
            out.push_str(&format!(
                "  {id}  {}  attempts {}  {}\n",
                p.kind,
                p.attempts,
                p.last_error.as_deref().unwrap_or("")
            ));
        }
        if (r.parked.len() as u64) < r.parked_count {
            out.push_str(&format!(
                "  … {} more (--limit)\n",
                r.parked_count - r.parked.len() as u64
            ));
        }
    }
    out
}
