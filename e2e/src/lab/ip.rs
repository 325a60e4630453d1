//! Running `ip` and friends: every change to links, addresses and routes is a
//! command an administrator could type, printed as it runs.

use super::*;

/// Runs a command to completion; a non-zero exit is an error saying
/// `what` was being done.
pub(super) fn run(what: &str, program: &str, args: &[&str]) -> Result<String, LabError> {
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(io_error(format!("{what}: running `{command}`")))?;
    if !output.status.success() {
        return Err(LabError::Command {
            what: what.to_string(),
            command,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub(super) fn ip(what: &str, args: &[&str]) -> Result<String, LabError> {
    run(what, "ip", args)
}

/// Runs `ip` and logs it, for the steps that change the system.
pub(super) fn ip_change(what: &str, args: &[&str]) -> Result<(), LabError> {
    eprintln!("lab: ip {}", args.join(" "));
    ip(what, args).map(|_| ())
}

/// The network namespaces that exist (`ip netns list`).
pub(super) fn netns_list() -> Result<Vec<String>, LabError> {
    let out = ip("listing network namespaces", &["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Link names in a namespace (`None`: the host), without the `@peer` part.
pub(super) fn links(netns: Option<&str>) -> Result<Vec<String>, LabError> {
    let mut args = vec![];
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-br", "link", "show"]);
    let out = ip("listing links", &args)?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|l| l.split('@').next().unwrap_or(l).to_string())
        .collect())
}

/// The IPv4 addresses of a link, `a.b.c.d/len`.
pub(super) fn addresses(netns: Option<&str>, link: &str) -> Result<Vec<String>, LabError> {
    let mut args = vec![];
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-4", "-br", "addr", "show", "dev", link]);
    let out = ip(&format!("reading the addresses of {link}"), &args)?;
    Ok(out.split_whitespace().skip(2).map(str::to_string).collect())
}

/// The `unreachable` routes of the host namespace.
pub(super) fn unreachable_routes() -> Result<Vec<String>, LabError> {
    let out = ip(
        "listing unreachable routes",
        &["route", "show", "type", "unreachable"],
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .collect())
}
