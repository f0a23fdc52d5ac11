use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = scrm::cli::Cli::parse();
    match scrm::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scrm: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
