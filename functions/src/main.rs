//! `orderflow`: config, tracing, then the chosen role until SIGINT/SIGTERM.

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use orderflow::{
    app::{Application, Role},
    board::LiveLog,
    cli::{Cli, Command},
    registry::Function,
    supervisor::shutdown_signal,
};
use tokio_util::sync::CancellationToken;

/// mimalloc in place of glibc's malloc: 12 % less CPU per order (issue 15, BENCHMARKS.md). It is
/// built with transparent huge pages off for the process (`.cargo/config.toml`'s `CFLAGS`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Only a process that serves the board feeds its live log (issue 15: the layer is costly).
    let live_log = cli.command.as_ref().is_none_or(Command::serves_board).then(LiveLog::new);
    let export = shared::telemetry::Export {
        endpoint: cli.config.otel_exporter_otlp_endpoint.as_deref(),
        service_name: &cli.config.otel_service_name,
        sdk_disabled: cli.config.otel_sdk_disabled,
    };
    let installed = live_log
        .iter()
        .map(LiveLog::layer)
        .collect::<anyhow::Result<Vec<_>>>()
        .and_then(|extra| shared::telemetry::init(cli.config.log_format, &cli.config.rust_log, export, extra));
    let telemetry = match installed {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("orderflow: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let code = match run(cli, live_log).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "orderflow failed");
            ExitCode::FAILURE
        }
    };
    // The last spans, with a bounded wait: a collector that is down does not hold up the exit.
    telemetry.shutdown().await;
    code
}

async fn run(cli: Cli, live_log: Option<LiveLog>) -> anyhow::Result<()> {
    let role = match cli.command.unwrap_or(Command::All) {
        Command::All => Role::All,
        Command::Api => Role::Api,
        Command::Worker(args) if args.functions.is_empty() => Role::Worker(Function::ALL.to_vec()),
        Command::Worker(args) => Role::Worker(args.functions),
        Command::Dlq(command) => return orderflow::dlq::run(&cli.config, command).await,
        Command::Users(command) => return orderflow::users::run(&cli.config, command).await,
        Command::Migrate => {
            shared::db::connect_and_migrate(&cli.config.database_url, 1, Duration::from_secs(60), Duration::ZERO)
                .await?;
            tracing::info!("database is up to date");
            return Ok(());
        }
    };
    let mut app = Application::build(cli.config, role).await?;
    if let Some(live_log) = live_log {
        app = app.with_live_log(live_log);
    }
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    });
    app.run(shutdown).await
}
