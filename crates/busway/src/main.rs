//! The `busway` binary: command line only. Everything it runs lives in the library crates.

mod admin_client;
mod cli;
mod gen_secret;
mod http_answer;
mod logging;
mod nodes;
mod notify;
mod reload;
mod serve;
mod status;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_level, cli.log_format);
    match cli.command {
        cli::Command::Run { config } => serve::run_file(serve::Source::Toml(config)),
        cli::Command::Controller { file } => {
            serve::run_file(serve::Source::Ini(file, busway_config::Role::Controller))
        }
        cli::Command::Segment { file } => {
            serve::run_file(serve::Source::Ini(file, busway_config::Role::Segment))
        }
        cli::Command::Check { config, role } => serve::check(&config, role),
        cli::Command::Demo { listen } => serve::demo(&listen),
        cli::Command::Status { admin } => status::run(&admin),
        cli::Command::Nodes { admin } => nodes::run(&admin),
        cli::Command::Reload { admin } => reload::run(&admin),
        cli::Command::GenSecret => gen_secret::run(),
    }
}
