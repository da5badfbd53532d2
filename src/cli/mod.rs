//! The command line: `serve`, `validate`, `token`, `healthcheck`, `version`.

mod demo;
mod healthcheck;
mod serve;
mod token;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// streamgate: authenticated real-time edge server.
#[derive(Debug, Parser)]
#[command(name = "streamgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (with no config: a demo with generated secrets).
    Serve {
        /// YAML config file.
        #[arg(long, env = "STREAMGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Check a config file and list every problem (exit 1 when there is any).
    Validate {
        /// YAML config file.
        #[arg(long, env = "STREAMGATE_CONFIG")]
        config: PathBuf,
    },
    /// Print a signed JWT for testing.
    Token(token::TokenArgs),
    /// Exit 0 when the URL answers 200, else 1 (for container health checks).
    Healthcheck {
        /// URL to probe.
        #[arg(long, default_value = "http://127.0.0.1:8080/health")]
        url: String,
    },
    /// Print the version.
    Version,
}

/// Runs the CLI; the exit code says whether the command succeeded.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve::run(config),
        Command::Validate { config } => validate(&config),
        Command::Token(args) => token::run(args),
        Command::Healthcheck { url } => healthcheck::run(&url),
        Command::Version => {
            println!("streamgate {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

fn validate(path: &std::path::Path) -> ExitCode {
    let (config, mut problems) = match crate::config::load_lenient(Some(path), std::env::vars()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    problems.extend(config.validate(false));
    if problems.is_empty() {
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
    }
    eprintln!("{}: {} problem(s)", path.display(), problems.len());
    for p in problems {
        eprintln!("  - {p}");
    }
    ExitCode::FAILURE
}
