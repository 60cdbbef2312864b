//! Command-line interface: the subcommands and their flags. Each flag also reads
//! `TOKENWARDEN_<FLAG>` from the environment.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "tokenwarden", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions (the source of `crds/`).
    Crds {
        /// Write one file per CRD into these folders, created if missing, instead of printing
        /// them (repeat the flag for several; the environment variable names one).
        #[arg(
            long = "output-dir",
            env = "TOKENWARDEN_OUTPUT_DIR",
            value_name = "DIR"
        )]
        output_dirs: Vec<std::path::PathBuf>,
    },
    /// Run the operator: reconcile ApiTokenPolicy and ApiClient, within the AudienceGuardrails,
    /// into the issuer's configuration.
    Controller(crate::controller::ControllerOptions),
    /// Run the token issuer (standalone with --policies, else following the cluster).
    Issuer(Box<crate::issuer::IssuerOptions>),
    /// Check ApiTokenPolicy, ApiClient and AudienceGuardrail YAML offline, as the API server
    /// and the controller would (give the platform's AudienceGuardrails among the paths).
    Validate {
        /// Files or folders (searched for *.yaml and *.yml) to check.
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
    },
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Crds { output_dirs } if output_dirs.is_empty() => {
            print!("{}", crate::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Crds { output_dirs } => write_crds(&output_dirs),
        Command::Validate { paths } => crate::validate::run(&paths),
        Command::Controller(options) => serve("controller", |shutdown| async move {
            crate::controller::run(options, shutdown)
                .await
                .map_err(|e| e.to_string())
        }),
        Command::Issuer(options) => serve("issuer", |shutdown| async move {
            crate::issuer::run(*options, shutdown)
                .await
                .map_err(|e| e.to_string())
        }),
    }
}

fn write_crds(dirs: &[std::path::PathBuf]) -> ExitCode {
    for dir in dirs {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        for crd in crate::api::crds() {
            let path = dir.join(crate::api::crd_file_name(&crd));
            if let Err(e) = std::fs::write(&path, crate::api::crd_yaml(&crd)) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!("wrote {}", path.display());
        }
    }
    ExitCode::SUCCESS
}

/// Run a long-lived component on a multi-threaded runtime with logging (and traces, when an
/// OTLP endpoint is set), until SIGINT or SIGTERM; the last spans are flushed on the way out.
/// A start-up error is printed and gives exit code 1.
fn serve<F, Fut>(name: &str, component: F) -> ExitCode
where
    F: FnOnce(tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let telemetry = match crate::telemetry::init(name) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            telemetry.shutdown();
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(signal(shutdown.clone()));
        match component(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                tracing::error!("{message}");
                ExitCode::FAILURE
            }
        }
    });
    // The runtime first: tasks still holding spans end them as they are dropped.
    drop(runtime);
    telemetry.shutdown();
    code
}

/// Cancel `shutdown` on SIGINT or SIGTERM.
async fn signal(shutdown: tokio_util::sync::CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let name = tokio::select! {
        () = interrupt => "SIGINT",
        () = terminate => "SIGTERM",
    };
    shutdown.cancel();
    tracing::info!(signal = name, "shutting down");
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory as _;

    /// The contract: every flag also reads `TOKENWARDEN_<FLAG>`.
    #[test]
    fn every_flag_reads_its_environment_variable() {
        let cli = Cli::command();
        let mut checked = 0;
        for command in cli.get_subcommands() {
            for arg in command.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if ["help", "version"].contains(&long) {
                    continue;
                }
                let expected = format!("TOKENWARDEN_{}", long.to_uppercase().replace('-', "_"));
                let env = arg.get_env().and_then(|e| e.to_str());
                assert_eq!(
                    env,
                    Some(expected.as_str()),
                    "{} --{long}",
                    command.get_name()
                );
                checked += 1;
            }
        }
        assert!(checked > 20, "only {checked} flags found");
    }

    /// The contract's defaults: the issuer listens on 127.0.0.1:8080 and names itself after it.
    #[test]
    fn the_issuer_listens_on_localhost_8080_by_default() {
        use clap::Parser as _;
        let cli = Cli::try_parse_from(["tokenwarden", "issuer"]).expect("parse");
        let super::Command::Issuer(options) = cli.command else {
            panic!("not the issuer");
        };
        assert_eq!(options.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(options.issuer_url, None, "so http://<listen>");
        assert_eq!(options.policies, None, "cluster mode without --policies");
    }
}
