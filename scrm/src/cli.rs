//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::bus_tool;
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
    /// Tenants (`scrm tenant add`).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Users of a tenant (`scrm user add`).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Parked messages (those that failed every attempt) of the consumer groups.
    Bus {
        #[command(subcommand)]
        command: BusCommand,
    },
}

/// `scrm tenant …` (the gateway's database of `--config`, else of `--data-dir`).
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Add a tenant (or rename one).
    Add {
        /// `[a-z0-9][a-z0-9_-]{0,63}`.
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "Asia/Shanghai")]
        time_zone: String,
        #[arg(
            long,
            env = "SCRM_DATA_DIR",
            default_value = "data",
            value_name = "DIR"
        )]
        data_dir: PathBuf,
    },
}

/// `scrm user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user to a tenant with a role (password from SCRM_USER_PASSWORD, at least 12
    /// characters; without one the user signs in only with API tokens).
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        /// owner, admin, operator, analyst or rep.
        #[arg(long, value_parser = parse_role)]
        role: proto::auth::Role,
        /// Also print a new API token for the user.
        #[arg(long)]
        token: bool,
        #[arg(
            long,
            env = "SCRM_DATA_DIR",
            default_value = "data",
            value_name = "DIR"
        )]
        data_dir: PathBuf,
    },
}

fn parse_role(s: &str) -> Result<proto::auth::Role, String> {
    proto::auth::Role::parse(s)
        .ok_or_else(|| "one of owner, admin, operator, analyst, rep".to_string())
}

/// `scrm bus …`. With a config file (or `SCRM_BUS__URL`) they talk to RabbitMQ; otherwise to
/// the running `scrm up` (its in-process bus) through its gateway.
#[derive(Debug, Subcommand)]
pub enum BusCommand {
    /// List each group's queued and parked messages (type, id, attempts, last error).
    Parked {
        /// Only this group (default: identity, tagging, scoring).
        #[arg(long, value_name = "G")]
        group: Option<String>,
        /// Parked messages shown per group.
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: EmbeddedTarget,
    },
    /// Send parked messages back to their group's queue with a fresh attempt count.
    Replay {
        #[arg(long, value_name = "G")]
        group: String,
        /// The envelope id of one parked message.
        #[arg(
            long,
            value_name = "ID",
            conflicts_with = "all",
            required_unless_present = "all"
        )]
        id: Option<uuid::Uuid>,
        /// Every parked message of the group.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        target: EmbeddedTarget,
    },
}

/// Where the running `scrm up` is (embedded mode).
#[derive(Debug, clap::Args)]
pub struct EmbeddedTarget {
    /// The gateway of the running `scrm up`.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_name = "URL")]
    url: String,
    /// Its data directory (for its internal key).
    #[arg(
        long,
        env = "SCRM_DATA_DIR",
        default_value = "data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// Its internal key, when it is configured (`gateway.internal_key`) rather than kept in
    /// the data directory.
    #[arg(
        long,
        env = "SCRM_GATEWAY__INTERNAL_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    internal_key: Option<String>,
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
            println!(
                "  admin API: {}/admin/v1   owner token of tenant `demo`: {}",
                running.url(Role::Gateway),
                data_dir.join("admin.token").display()
            );
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
        Command::Bus { command } => bus(config, command).await,
        Command::Tenant {
            command:
                TenantCommand::Add {
                    id,
                    name,
                    time_zone,
                    data_dir,
                },
        } => crate::people::add_tenant(config, &data_dir, &id, &name, &time_zone).await,
        Command::User {
            command:
                UserCommand::Add {
                    tenant,
                    email,
                    role,
                    token,
                    data_dir,
                },
        } => crate::people::add_user(config, &data_dir, &tenant, &email, role, token).await,
    }
}

async fn bus(config: Option<&std::path::Path>, command: BusCommand) -> anyhow::Result<()> {
    let target = match &command {
        BusCommand::Parked { target, .. } | BusCommand::Replay { target, .. } => target,
    };
    let t = bus_tool::Target::resolve(
        config,
        &target.url,
        &target.data_dir,
        target.internal_key.as_deref(),
    )
    .await?;
    match command {
        BusCommand::Parked {
            group, limit, json, ..
        } => {
            let reports = t.parked(group.as_deref(), limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                print!("{}", bus_tool::render(&reports));
            }
        }
        BusCommand::Replay { group, id, .. } => {
            let n = t.replay(&group, id).await?;
            println!("{group}: {n} parked message(s) sent back");
        }
    }
    Ok(())
}

async fn serve(config: Option<&std::path::Path>, role: Role) -> anyhow::Result<()> {
    let running = up::start_production(config, &[role]).await?;
    running.wait_for_signal().await
}
