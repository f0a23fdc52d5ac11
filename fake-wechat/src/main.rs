//! `fake-wechat`: runs the fake WeChat / WeCom API server with a seeded population until Ctrl-C,
//! for offline development against `scrm up` and for scripts (scripts/browser.sh).

use anyhow::Context;
use clap::Parser;
use fake_wechat::FakeWechat;

/// Run a fake WeChat / WeCom API server with a seeded population (development and tests).
///
/// Prints its base URL, its apps' credentials and its developer endpoints. Point the gateway's
/// SCRM_GATEWAY__WECHAT_API__OA_BASE_URL, …__WECOM_BASE_URL and …__OPEN_BASE_URL at it.
#[derive(Debug, Parser)]
#[command(name = "fake-wechat", version)]
struct Cli {
    /// Port on 127.0.0.1 (0 picks a free port).
    #[arg(long, default_value_t = 0, value_name = "N")]
    port: u16,
    /// Seed of the apps and the population.
    #[arg(long, default_value_t = 1, value_name = "S")]
    seed: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli.port, cli.seed).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-wechat: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Starts the fake WeChat server, prints where it is and its apps, and runs until Ctrl-C.
async fn run(port: u16, seed: u64) -> anyhow::Result<()> {
    let fake = FakeWechat::start(port, seed)
        .with_context(|| format!("starting the fake WeChat server on port {port}"))?;
    let base = fake.base_url().to_owned();
    println!("Fake WeChat is up at {base} (seed {seed})");
    println!("  API base for OA, mini-program and WeCom: {base}");
    for app in fake.apps().all() {
        let agent = match (app.agent.as_deref(), app.agent_id) {
            (_, Some(id)) => format!(" (AgentID {id})"),
            (Some(a), None) => format!(" (secret label {a})"),
            (None, None) => String::new(),
        };
        println!(
            "  {:<13} id {}{agent}  secret {}  callback token {}  EncodingAESKey {}",
            app.name, app.appid, app.secret, app.token, app.encoding_aes_key
        );
    }
    println!(
        "  {} users, {} reps",
        fake.population().users.len(),
        fake.population().reps.len()
    );
    for line in fake.help_lines() {
        println!("  {line}");
    }
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    fake.stop().await;
    Ok(())
}
