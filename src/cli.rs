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
        /// Write one file per CRD into these folders instead of printing them.
        #[arg(long = "output-dir", value_name = "DIR")]
        output_dirs: Vec<std::path::PathBuf>,
    },
    /// Check ApiTokenPolicy and ApiClient YAML offline, as the API server would.
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
    }
}

fn write_crds(dirs: &[std::path::PathBuf]) -> ExitCode {
    for dir in dirs {
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
