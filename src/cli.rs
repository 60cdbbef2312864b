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
    Crds,
    /// Check ApiTokenPolicy and ApiClient YAML offline, as the API server would.
    Validate {
        /// Files or folders (searched for *.yaml and *.yml) to check.
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
    },
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Crds => {
            print!("{}", crate::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Validate { paths } => crate::validate::run(&paths),
    }
}
