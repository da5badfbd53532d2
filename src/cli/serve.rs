//! `streamgate serve`.

use super::demo;
use crate::config::{self, ConfigError};
use std::path::PathBuf;
use std::process::ExitCode;

pub(super) fn run(path: Option<PathBuf>) -> ExitCode {
    let mut config = match config::load(path.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let demo = if path.is_none() {
        demo::prepare(&mut config)
    } else {
        None
    };
    let problems = config.validate(false);
    if !problems.is_empty() {
        eprintln!("{}", ConfigError::Invalid(problems));
        return ExitCode::FAILURE;
    }
    crate::telemetry::init_logging(&config.logging);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match crate::server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("streamgate: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(demo) = demo {
            demo.print(server.addr());
        }
        tokio::select! {
            _ = crate::server::termination_signal() => {
                tracing::info!("shutdown signal received; draining");
                server.shutdown();
            }
            _ = server.state().shutdown.cancelled() => {}
        }
        server.stopped().await;
        ExitCode::SUCCESS
    })
}
