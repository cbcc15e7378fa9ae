use std::process::ExitCode;

use clap::Parser;
use supabackup::cli::{self, Cli};

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // Every process logs to <data>/logs (rotated, redacted); stderr stays
    // quiet unless SUPABACKUP_LOG asks for more.
    let (component, to_file) = match &cli.command {
        None => ("gui", true),
        Some(cli::Command::Daemon { .. }) => ("daemon", true),
        // Decrypting needs no data folder; reading the logs adds none.
        Some(cli::Command::Decrypt { .. } | cli::Command::Logs { .. }) => ("cli", false),
        Some(_) => ("cli", true),
    };
    let logs = to_file
        .then(|| supabackup::engine::paths::DataDir::resolve(cli.data_dir.clone()).ok())
        .flatten()
        .map(|d| d.logs());
    let _logs = supabackup::engine::logging::init(component, logs.as_deref(), "warn");
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "{component} started");
    if let Err(e) = cli::apply_globals(&cli) {
        cli::report(&e);
        return ExitCode::from(u8::try_from(e.kind.exit_code()).unwrap_or(1));
    }
    let code = match cli.command.take() {
        None => match supabackup::ui::run(cli.data_dir.clone(), cli.screenshot.clone()) {
            Ok(()) => 0,
            Err(e) => {
                cli::report(&e);
                e.kind.exit_code()
            }
        },
        Some(command) => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(cli::run(cli, command)),
            Err(e) => {
                eprintln!("error: could not start the async runtime: {e}");
                1
            }
        },
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
