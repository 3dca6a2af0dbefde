//! `busway reload`: asks a running node to read its configuration file again through
//! `POST /v1/reload`, for hosts where sending it SIGHUP is awkward (another user, a container,
//! a remote admin port). Unlike SIGHUP, the outcome comes back: exit 0 once the new file runs,
//! 1 with the node's reason when it was refused.

use std::process::ExitCode;

use crate::admin_client::Client;
use crate::cli::AdminArgs;

pub fn run(args: &AdminArgs) -> ExitCode {
    let client = match Client::new(&args.admin, args.token.clone(), args.ca.as_deref()) {
        Ok(c) => c,
        Err(e) => return e.report("reload"),
    };
    let answer = match client.request("POST", "/v1/reload") {
        Ok(a) => a,
        Err(e) => return e.report("reload"),
    };
    let why = answer.error_text();
    let name = client.name();
    let what = match answer.status {
        200..=299 => {
            println!("{name}: configuration reloaded");
            return ExitCode::SUCCESS;
        }
        400 => format!("the new configuration is invalid; the previous one keeps running: {why}"),
        409 => format!(
            "the node cannot apply this change; the previous configuration keeps running: {why}"
        ),
        401 => format!(
            "unauthorised: give the admin token with --token or $BUSWAY_ADMIN_TOKEN ({why})"
        ),
        404 | 405 => format!(
            "no POST /v1/reload here (a node older than this busway?): HTTP {}: {why}",
            answer.status
        ),
        s => format!("HTTP {s}: {why}"),
    };
    eprintln!("busway reload: {name}: {what}");
    ExitCode::from(1)
}
