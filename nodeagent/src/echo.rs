//! The built-in `kube-lite/echo` image: a server that says who answered.
//!
//! Teaching Services is teaching *which Pod got the packet*. The lesson's
//! nginx answers every request with its own address, its hostname (the Pod's
//! name), the request and the time; this server answers in the same shape,
//! plus the client's address as the Pod saw it - which shows the
//! masquerading a NodePort or a hairpin does:
//!
//! ```text
//! srv : 10.244.1.3:8080
//! host: echo-7d9c5b6f4-x2x8k
//! uri : GET 10.96.0.20 /hello
//! client: 10.244.1.1:51234
//! date: 2026-12-02T18:00:00+00:00
//! ```
//!
//! It also echoes UDP datagrams (`host:` and `client:` lines, then the
//! datagram), for UDP Services, which nginx does not serve.
//!
//! The program is `kube-lite-echo`, the only file of the image besides
//! its libraries (the lab builds it, `e2e::images`). Like any well-behaved
//! container it exits 0 on SIGTERM after the requests in flight are
//! answered, which is what the kubelet's graceful deletion expects, and it
//! logs one line per request to stdout, where `kubectl logs` reads.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::{header, HeaderMap, Method, Uri, Version};
use axum::serve::IncomingStream;
use axum::Router;
use tokio::net::{TcpListener, UdpSocket};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// The port served when neither `--port` nor `$PORT` is given (agnhost's
/// and many tutorials' choice).
pub const DEFAULT_PORT: u16 = 8080;

/// The largest UDP datagram echoed back whole.
const MAX_DATAGRAM: usize = 65_507;

/// `kube-lite-echo [--port N] [--udp-port N]`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "kube-lite-echo",
    about = "The kube-lite/echo image: answers HTTP and UDP with who answered"
)]
pub struct EchoArgs {
    /// The HTTP port, on every address of the Pod.
    #[arg(long, env = "PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// The UDP echo port (default: the HTTP port).
    #[arg(long)]
    pub udp_port: Option<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    #[error("listening for {protocol} on {addr}: {source}")]
    Bind {
        protocol: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("installing the {0} handler: {1}")]
    Signal(&'static str, std::io::Error),
    #[error("serving {protocol}: {source}")]
    Serve {
        protocol: &'static str,
        source: std::io::Error,
    },
}

/// Serves until SIGTERM or SIGINT, then stops accepting, answers what is in
/// flight and returns `Ok`: the process exits 0.
pub async fn serve(args: EchoArgs) -> Result<(), EchoError> {
    // Before binding: a SIGTERM that comes right after start must already
    // mean "stop cleanly", not the default "die by signal".
    let mut term = signal(SignalKind::terminate()).map_err(|e| EchoError::Signal("SIGTERM", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| EchoError::Signal("SIGINT", e))?;
    let stop = async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        println!("echo: {name} received, shutting down");
    };
    run(args, stop).await
}

/// Serves until `stop` completes (tests and [`serve`] choose what stops it).
pub async fn run(
    args: EchoArgs,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EchoError> {
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let http_addr = SocketAddr::new(any, args.port);
    let udp_addr = SocketAddr::new(any, args.udp_port.unwrap_or(args.port));
    let listener = TcpListener::bind(http_addr)
        .await
        .map_err(|source| EchoError::Bind {
            protocol: "HTTP",
            addr: http_addr,
            source,
        })?;
    let udp = UdpSocket::bind(udp_addr)
        .await
        .map_err(|source| EchoError::Bind {
            protocol: "UDP",
            addr: udp_addr,
            source,
        })?;
    let host = hostname();
    println!("echo: serving HTTP on {http_addr} and UDP on {udp_addr} as {host}");

    let (stopping_tx, stopping) = watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stopping_tx.send(true);
    });
    let app = Router::new().fallback(answer);
    let http = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<Connection>(),
    )
    .with_graceful_shutdown(stopped(stopping.clone()));
    let http = async {
        http.await.map_err(|source| EchoError::Serve {
            protocol: "HTTP",
            source,
        })
    };
    let (http, udp) = tokio::join!(http, udp_echo(udp, host, stopping));
    http?;
    udp?;
    println!("echo: stopped");
    Ok(())
}

async fn stopped(mut stopping: watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens after it sent.
    let _ = stopping.wait_for(|s| *s).await;
}

/// The two ends of an HTTP connection: nginx's `$server_addr` is the
/// address the client reached, not the `0.0.0.0` listened on.
#[derive(Debug, Clone, Copy)]
struct Connection {
    local: SocketAddr,
    peer: SocketAddr,
}

impl Connected<IncomingStream<'_, TcpListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Connection {
        let peer = *stream.remote_addr();
        let local = stream
            .io()
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
        Connection { local, peer }
    }
}

/// Every request, whatever its method and path, gets the same kind of
/// answer.
async fn answer(
    ConnectInfo(connection): ConnectInfo<Connection>,
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
) -> ([(header::HeaderName, &'static str); 1], String) {
    let host = request_host(&uri, &headers).unwrap_or_else(|| connection.local.ip().to_string());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let text = format!(
        "srv : {}\nhost: {}\nuri : {method} {host} {path}\nclient: {}\ndate: {}\n",
        connection.local,
        hostname(),
        connection.peer,
        now_iso8601(),
    );
    println!(
        "{} \"{method} {path} {version:?}\" 200 host={host}",
        connection.peer
    );
    ([(header::CONTENT_TYPE, "text/plain")], text)
}

/// nginx's `$host`: the host of an absolute request URI, else the Host
/// header without its port, lowercased.
fn request_host(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    if let Some(host) = uri.host() {
        return Some(host.to_ascii_lowercase());
    }
    let value = headers.get(header::HOST)?.to_str().ok()?;
    let host = if value.starts_with('[') {
        // [v6]:port
        value.split_inclusive(']').next().unwrap_or(value)
    } else {
        value.split(':').next().unwrap_or(value)
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Answers each datagram with who answered and who asked, then the
/// datagram itself.
async fn udp_echo(
    socket: UdpSocket,
    host: String,
    mut stopping: watch::Receiver<bool>,
) -> Result<(), EchoError> {
    let serve_error = |source| EchoError::Serve {
        protocol: "UDP",
        source,
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, peer) = tokio::select! {
            received = socket.recv_from(&mut buf) => received.map_err(serve_error)?,
            _ = stopping.wait_for(|s| *s) => return Ok(()),
        };
        let mut reply = format!("host: {host}\nclient: {peer}\n").into_bytes();
        reply.extend_from_slice(&buf[..len]);
        reply.truncate(MAX_DATAGRAM);
        println!("{peer} udp {len} bytes");
        // A client that went away is its problem, not the server's.
        if let Err(e) = socket.send_to(&reply, peer).await {
            println!("{peer} udp reply failed: {e}");
        }
    }
}

/// The hostname of the UTS namespace this runs in: the Pod's name. Read
/// from /proc, which shows the caller's namespace's value.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// nginx's `$time_iso8601`: local time, seconds, numeric offset.
fn now_iso8601() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_nginx_s_host() {
        let mut headers = HeaderMap::new();
        let path: Uri = "/x?y=1".parse().unwrap();
        assert_eq!(request_host(&path, &headers), None);
        headers.insert(header::HOST, "Web.Example:8080".parse().unwrap());
        assert_eq!(
            request_host(&path, &headers).as_deref(),
            Some("web.example")
        );
        headers.insert(header::HOST, "[::1]:80".parse().unwrap());
        assert_eq!(request_host(&path, &headers).as_deref(), Some("[::1]"));
        let absolute: Uri = "http://10.96.0.20/x".parse().unwrap();
        assert_eq!(
            request_host(&absolute, &headers).as_deref(),
            Some("10.96.0.20")
        );
    }

    #[test]
    fn the_date_looks_like_nginx_s() {
        let date = now_iso8601();
        // 2026-12-02T18:00:00+00:00
        assert_eq!(date.len(), 25, "{date}");
        assert_eq!(&date[10..11], "T");
    }
}
