//! `kubectl logs`: print what a container wrote to stdout and stderr.
//!
//! The API server does not keep logs; it forwards
//! `GET /api/v1/namespaces/NS/pods/POD/log?container=C&tailLines=N&follow=true`
//! to the kubelet of the Pod's node, which reads the container's log files
//! and streams them back. With `-f` the answer stays open and lines arrive
//! as the container writes them, until it stops or the user presses
//! Ctrl-C. `--previous` asks for the container instance before the last
//! restart: the way to see why a crashing container crashed.

use std::io::Write as _;

use clap::Args;
use futures::StreamExt;

use crate::client::Client;
use crate::containers;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The Pod (`NAME` or `pod/NAME`)
    pub pod: String,
    /// The container (default: the Pod's only or default container)
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep streaming new lines
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The container instance before the last restart
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Prefix each line with its RFC 3339 timestamp
    #[arg(long)]
    pub timestamps: bool,
    /// Only the last N lines (-1: all)
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub tail: i64,
    /// Only lines newer than this duration, like 5s, 2m or 3h
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many bytes (0: no limit)
    #[arg(long, default_value_t = 0)]
    pub limit_bytes: i64,
}

pub async fn run(client: &Client, args: LogsArgs) -> anyhow::Result<()> {
    let name = containers::pod_name(&args.pod)?;
    let pod = containers::get_pod(client, &name).await?;
    let container = match &args.container {
        Some(c) if !containers::has_container(&pod, c) => {
            anyhow::bail!("container {c} is not valid for pod {name}")
        }
        Some(c) => c.clone(),
        None => {
            let (c, notice) = containers::default_container(&pod)?;
            if let Some(notice) = notice {
                eprintln!("{notice}");
            }
            c
        }
    };
    let mut query = vec![("container", container)];
    if args.follow {
        query.push(("follow", "true".into()));
    }
    if args.previous {
        query.push(("previous", "true".into()));
    }
    if args.timestamps {
        query.push(("timestamps", "true".into()));
    }
    if args.tail >= 0 {
        query.push(("tailLines", args.tail.to_string()));
    }
    if let Some(since) = &args.since {
        query.push(("sinceSeconds", parse_duration_seconds(since)?.to_string()));
    }
    if args.limit_bytes > 0 {
        query.push(("limitBytes", args.limit_bytes.to_string()));
    }
    let path = format!("/api/v1/namespaces/{}/pods/{name}/log", client.namespace);
    let mut body = client.get_stream(&path, &query).await?;
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        stdout.write_all(&chunk)?;
        // Lines show up as they come (`-f`), not when a buffer fills.
        stdout.flush()?;
    }
    Ok(())
}

/// `--since`: a Go duration (`10s`, `5m`, `1h30m`) in whole seconds, at
/// least 1 as the API requires.
pub fn parse_duration_seconds(text: &str) -> anyhow::Result<u64> {
    let invalid = || {
        anyhow::anyhow!(
            "invalid argument {text:?} for \"--since\" flag: time: invalid duration {text:?}"
        )
    };
    let mut seconds = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(invalid)?;
        let number: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(invalid()),
        };
        seconds += number * factor;
        rest = &rest[unit_len..];
    }
    Ok((seconds.ceil() as u64).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_durations() {
        assert_eq!(parse_duration_seconds("10s").unwrap(), 10);
        assert_eq!(parse_duration_seconds("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration_seconds("1.5m").unwrap(), 90);
        assert_eq!(parse_duration_seconds("500ms").unwrap(), 1);
        assert!(parse_duration_seconds("10").is_err());
        assert!(parse_duration_seconds("ten").is_err());
    }
}
