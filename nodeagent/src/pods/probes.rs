//! Probes: how the kubelet decides a container is alive and ready.
//!
//! - A **readiness** probe failing takes the Pod out of its Services'
//!   endpoints (it stays running): the Service stops sending it traffic.
//! - A **liveness** probe failing `failureThreshold` times in a row gets
//!   the container killed and restarted.
//! - A **startup** probe holds both back until it has succeeded once.
//!
//! Each probe is one of three checks, run from the node like the kubelet
//! does: `httpGet` (a GET to the Pod's IP; 200-399 is success),
//! `tcpSocket` (a connection opens) or `exec` (a command run inside the
//! container by the runtime, `ExecSync`, exits 0).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::cri::Runtime;

/// The result of one probe run; a failure says why (shown in the
/// `Unhealthy` event, like the kubelet's "Readiness probe failed: ...").
pub type Outcome = Result<(), String>;

/// The counters of one probe of one container.
#[derive(Debug)]
pub struct ProbeState {
    pub probe: Probe,
    /// When it runs next.
    pub next: Instant,
    successes: i32,
    failures: i32,
    /// The current verdict, after the thresholds.
    pub passing: bool,
}

impl ProbeState {
    /// A probe for a container that started at `started`; `passing` is the
    /// verdict before the first run (not ready, but alive).
    pub fn new(probe: Probe, started: Instant, passing: bool) -> ProbeState {
        let delay = probe.initial_delay_seconds.unwrap_or(0).max(0) as u64;
        ProbeState {
            probe,
            next: started + Duration::from_secs(delay),
            successes: 0,
            failures: 0,
            passing,
        }
    }

    pub fn period(&self) -> Duration {
        Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64)
    }

    /// Whether it failed `failureThreshold` times in a row (for a startup
    /// probe: the container must be restarted).
    pub fn failed_for_good(&self) -> bool {
        self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1)
    }

    /// Counts one result; returns whether the verdict changed.
    pub fn record(&mut self, outcome: &Outcome, now: Instant) -> bool {
        self.next = now + self.period();
        let before = self.passing;
        if outcome.is_ok() {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= self.probe.success_threshold.unwrap_or(1).max(1) {
                self.passing = true;
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1) {
                self.passing = false;
            }
        }
        before != self.passing
    }
}

/// Runs one probe against a container whose Pod has `pod_ip`: HTTP and
/// TCP from the node to the Pod's IP, exec through the runtime.
pub async fn run(
    probe: &Probe,
    container: &Container,
    pod_ip: IpAddr,
    runtime: &Runtime,
    container_id: &str,
) -> Outcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    let check = async {
        if let Some(http) = &probe.http_get {
            let port = resolve_port(&http.port, container)?;
            let host = http
                .host
                .as_deref()
                .and_then(|h| h.parse().ok())
                .unwrap_or(pod_ip);
            let path = http.path.as_deref().unwrap_or("/");
            if http
                .scheme
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("https"))
            {
                return Err("HTTPS probes are not supported by kube-lite".to_string());
            }
            http_get(SocketAddr::new(host, port), path).await
        } else if let Some(tcp) = &probe.tcp_socket {
            let port = resolve_port(&tcp.port, container)?;
            let host = tcp
                .host
                .as_deref()
                .and_then(|h| h.parse().ok())
                .unwrap_or(pod_ip);
            tokio::net::TcpStream::connect(SocketAddr::new(host, port))
                .await
                .map(|_| ())
                .map_err(|e| format!("dial tcp {host}:{port}: connect: {e}"))
        } else if let Some(exec) = &probe.exec {
            let command = exec.command.as_deref().unwrap_or_default();
            exec_in(runtime, container_id, command, timeout).await
        } else {
            Err("the probe has no handler (httpGet, tcpSocket or exec)".to_string())
        }
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "probe timed out after {}s (timeoutSeconds)",
            timeout.as_secs()
        )),
    }
}

/// A port number, or the name of one of the container's ports.
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("port {name:?} is not a named port of the container")),
    }
}

/// A minimal HTTP/1.1 GET: enough to read the status line.
async fn http_get(addr: SocketAddr, path: &str) -> Outcome {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("Get \"http://{addr}{path}\": dial tcp {addr}: connect: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.35\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("Get \"http://{addr}{path}\": {e}"))?;
    let mut head = vec![0u8; 64];
    let n = stream
        .read(&mut head)
        .await
        .map_err(|e| format!("Get \"http://{addr}{path}\": {e}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get \"http://{addr}{path}\": malformed HTTP response"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// Runs `command` in the container through the runtime (`ExecSync`,
/// as the kubelet runs exec probes); success is exit 0.
async fn exec_in(
    runtime: &Runtime,
    container_id: &str,
    command: &[String],
    timeout: Duration,
) -> Outcome {
    let answer = runtime
        .clone()
        .exec_sync(container_id, command, timeout)
        .await
        .map_err(|status| super::pull::go_status(&status))?;
    if answer.exit_code == 0 {
        Ok(())
    } else {
        let mut text = answer.stdout;
        text.extend(answer.stderr);
        Err(format!(
            "command {command:?} exited with {}: {}",
            answer.exit_code,
            String::from_utf8_lossy(&text).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_decide_the_verdict() {
        let probe = Probe {
            failure_threshold: Some(2),
            success_threshold: Some(1),
            period_seconds: Some(1),
            ..Default::default()
        };
        let now = Instant::now();
        let mut state = ProbeState::new(probe, now, true);
        assert!(
            !state.record(&Err("no".into()), now),
            "one failure is not enough"
        );
        assert!(state.record(&Err("no".into()), now), "two are");
        assert!(!state.passing);
        assert!(state.record(&Ok(()), now));
        assert!(state.passing);
        assert_eq!(state.next, now + Duration::from_secs(1));
    }
}
