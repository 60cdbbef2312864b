//! The `tokenwarden` binary: parse the command line and hand over to the library.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tokenwarden::cli::Cli::parse();
    tokenwarden::cli::run(cli)
}
