use std::process::ExitCode;

use clap::Parser;
use supabackup::cli::{self, Cli};

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SUPABACKUP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    init_logging();
    let mut cli = Cli::parse();
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
