//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::roles::{self, Role};
use crate::settings::{self, Mode, Settings};
use crate::up::{self, UpOptions};

/// SCRM backend: WeChat callbacks in, one profile per customer, tags and lead scores out.
///
/// Quick start: `scrm up` runs everything in this process with zero set-up (SQLite files under
/// ./data, in-process bus and cache) and serves the gateway on http://127.0.0.1:8080.
///
/// Production: run `scrm migrate`, then one process per role (`scrm gateway`, `scrm identity`,
/// `scrm tagging`, `scrm scoring`, any number of replicas each) with a config file naming MySQL,
/// RabbitMQ and Redis (see config/production.example.toml).
///
/// Every config key can be overridden from the environment: SCRM_<SECTION>__<KEY>, e.g.
/// SCRM_BUS__URL=amqp://… or SCRM_IDENTITY__DATABASE__URL=mysql://….
#[derive(Debug, Parser)]
#[command(name = "scrm", version, verbatim_doc_comment)]
pub struct Cli {
    /// Config file (TOML). Optional for `up`; production roles read their URLs from it or from
    /// SCRM_* variables.
    #[arg(long, short, global = true, env = "SCRM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in this process with embedded storage (SQLite, in-process bus and cache).
    Up {
        /// Directory for the SQLite files (created if missing).
        #[arg(
            long,
            env = "SCRM_DATA_DIR",
            default_value = "data",
            value_name = "DIR"
        )]
        data_dir: PathBuf,
        /// Gateway address; identity, tagging and scoring listen on the next three ports.
        #[arg(long, env = "SCRM_BIND", default_value = up::DEFAULT_BIND, value_name = "ADDR")]
        bind: SocketAddr,
    },
    /// Run the gateway (WeChat callbacks, mini-program login, tracking, admin API).
    Gateway,
    /// Run the identity service (identifiers, profiles, merges, timeline).
    Identity,
    /// Run the tagging service (tags, tag rules, segments).
    Tagging,
    /// Run the scoring service (lead scores, stages).
    Scoring,
    /// Create the databases if needed and apply every role's migrations (production).
    Migrate {
        /// Only these roles (default: all).
        #[arg(long, value_enum, value_name = "ROLE")]
        role: Vec<Role>,
    },
    /// Run a fake WeChat / WeCom API server with a seeded population (development and tests).
    FakeWechat {
        /// Port on 127.0.0.1 (0 picks a free port).
        #[arg(long, default_value_t = 0, value_name = "N")]
        port: u16,
        /// Seed of the apps and the population.
        #[arg(long, default_value_t = 1, value_name = "S")]
        seed: u64,
    },
}

/// Runs the parsed command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Up { data_dir, bind } => {
            let running = up::start_embedded(UpOptions {
                data_dir: data_dir.clone(),
                bind: Some(bind),
                config: cli.config.clone(),
                init_tracing: true,
                overrides: None,
            })
            .await?;
            println!("SCRM is up (embedded mode, data in {})", data_dir.display());
            for role in Role::ALL {
                let url = running.url(role);
                println!(
                    "  {:<9} {url}   ready: {url}/readyz   metrics: {url}/metrics",
                    role.name()
                );
            }
            println!("Press Ctrl-C to stop.");
            running.wait_for_signal().await
        }
        Command::Gateway => serve(config, Role::Gateway).await,
        Command::Identity => serve(config, Role::Identity).await,
        Command::Tagging => serve(config, Role::Tagging).await,
        Command::Scoring => serve(config, Role::Scoring).await,
        Command::Migrate { role } => {
            let settings = Settings::load(
                Mode::Production,
                config,
                settings::production_defaults(),
                None,
            )?;
            platform::telemetry::init_tracing(&settings.telemetry);
            let targets = if role.is_empty() {
                Role::ALL.to_vec()
            } else {
                role
            };
            for r in targets {
                roles::migrate(r, &settings)
                    .await
                    .with_context(|| format!("migrating {}", r.name()))?;
                println!("{}: migrations applied", r.name());
            }
            Ok(())
        }
        Command::FakeWechat { port, seed } => fake_wechat(port, seed).await,
    }
}

/// Starts the fake WeChat server, prints where it is and its apps, and runs until Ctrl-C.
async fn fake_wechat(port: u16, seed: u64) -> anyhow::Result<()> {
    let fake = wechat::fake::FakeWechat::start(port, seed)
        .with_context(|| format!("starting the fake WeChat server on port {port}"))?;
    let base = fake.base_url().to_owned();
    println!("Fake WeChat is up at {base} (seed {seed})");
    println!("  API base for OA, mini-program and WeCom: {base}");
    for app in fake.apps().all() {
        let agent = app
            .agent
            .as_deref()
            .map(|a| format!(" (secret label {a})"))
            .unwrap_or_default();
        println!(
            "  {:<13} id {}{agent}  secret {}  callback token {}  EncodingAESKey {}",
            app.name, app.appid, app.secret, app.token, app.encoding_aes_key
        );
    }
    println!(
        "  {} users, {} reps: {base}/fake/population   apps: {base}/fake/apps   counters: {base}/fake/counters",
        fake.population().users.len(),
        fake.population().reps.len()
    );
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    fake.stop().await;
    Ok(())
}

async fn serve(config: Option<&std::path::Path>, role: Role) -> anyhow::Result<()> {
    let running = up::start_production(config, &[role]).await?;
    running.wait_for_signal().await
}
