//! The command line of CONTRACT section 1.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "busway", version, about = "A session-layer service bus")]
pub struct Cli {
    /// error, warn, info, debug or trace (RUST_LOG, when set, takes precedence)
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
    /// text or json, on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one node from a TOML file
    Run {
        /// The TOML file (default: $BUSWAY_CONFIG, then ./busway.toml)
        #[arg(short, long, env = "BUSWAY_CONFIG", default_value = "busway.toml")]
        config: PathBuf,
    },
    /// Cloudbus-compatible ingress from an INI file
    Controller {
        /// The INI file (default: $CONFIG_PATH, then /usr/local/etc/cloudbus/controller.ini)
        #[arg(
            short,
            long = "file",
            env = "CONFIG_PATH",
            default_value = "/usr/local/etc/cloudbus/controller.ini"
        )]
        file: PathBuf,
    },
    /// Cloudbus-compatible egress from an INI file
    Segment {
        /// The INI file (default: $CONFIG_PATH, then /usr/local/etc/cloudbus/segment.ini)
        #[arg(
            short,
            long = "file",
            env = "CONFIG_PATH",
            default_value = "/usr/local/etc/cloudbus/segment.ini"
        )]
        file: PathBuf,
    },
    /// Validate a TOML or INI file and print it normalised as TOML (secrets redacted)
    Check {
        /// The file to check: TOML, or INI with --role
        #[arg(short, long)]
        config: PathBuf,
        /// Read the file as a Cloudbus INI file for this role
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
    /// Ingress, egress and an echo backend in one process; try it with `nc 127.0.0.1 7999`
    Demo {
        /// Where the demo's clients connect
        #[arg(long, default_value = "tcp://127.0.0.1:7999")]
        listen: String,
    },
    /// Show a running node's services, peers and sessions
    Status {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show the nodes a running node has discovered through [discovery], itself included
    Nodes {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Make a running node read its configuration file again, as SIGHUP does
    ///
    /// Unlike the signal, the outcome comes back: exit 0 once the new file runs, 1 with the
    /// node's reason when it refused the file (the previous configuration keeps running) or
    /// cannot be reached, 2 for a usage error.
    Reload {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Print a new bus secret: 32 random bytes from the operating system, as 64 hex digits
    ///
    /// Use it for `[bus] secret` (which refuses secrets under 16 bytes), for example
    /// `BUSWAY_SECRET=$(busway gen-secret)`.
    GenSecret,
}

/// How the commands that ask a running node reach its admin API.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The node's admin URL: http://HOST:PORT (or the tcp:// URL it printed), https://HOST:PORT
    /// for a node with [admin.tls]
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9901")]
    pub admin: String,
    /// For an https:// URL: the CA certificate (PEM) that signed the node's admin certificate;
    /// default: the system's CAs
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The admin API's bearer token (`admin.token`); the environment variable keeps it out of
    /// the process list
    #[arg(
        long,
        value_name = "TOKEN",
        env = "BUSWAY_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum RoleArg {
    Controller,
    Segment,
}
