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
    }
}

async fn serve(config: Option<&std::path::Path>, role: Role) -> anyhow::Result<()> {
    let running = up::start_production(config, &[role]).await?;
    running.wait_for_signal().await
}
