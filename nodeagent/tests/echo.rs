//! The `kube-lite/echo` image: the real `kube-lite-echo` process on
//! loopback ports, spoken to over HTTP and UDP, stopped with SIGTERM as the
//! kubelet stops a container. No root needed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A running `kube-lite-echo`, killed by PID when dropped.
struct Echo {
    child: Child,
    /// Its stdout, line by line.
    lines: mpsc::Receiver<String>,
}

impl Echo {
    fn start(args: &[String], env: &[(&str, String)]) -> Echo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kube-lite-echo"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting kube-lite-echo");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let echo = Echo { child, lines };
        let first = echo.next_line();
        assert!(first.starts_with("echo: serving HTTP on"), "{first}");
        echo
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(TIMEOUT)
            .expect("a line on the echo server's stdout")
    }

    fn terminate(&mut self) -> ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "echo ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both TCP and UDP on this machine right now.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// Sends one HTTP/1.1 request on `stream` and reads one response (the
/// server sends Content-Length).
fn request(stream: &mut TcpStream, request: &str) -> (String, String) {
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (head, String::from_utf8(body).unwrap())
}

fn connect(port: u16) -> TcpStream {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connecting to echo");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

#[test]
fn answers_http_and_udp_with_who_answered_and_exits_0_on_sigterm() {
    let (port, udp_port) = (free_port(), free_port());
    let mut echo = Echo::start(
        &[
            "--port".into(),
            port.to_string(),
            "--udp-port".into(),
            udp_port.to_string(),
        ],
        &[],
    );

    let mut stream = connect(port);
    let me = stream.local_addr().unwrap();
    let (head, body) = request(
        &mut stream,
        "GET /hello?x=1 HTTP/1.1\r\nHost: Echo.Test:1234\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: text/plain"));
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 5, "{body}");
    assert_eq!(lines[0], format!("srv : 127.0.0.1:{port}"));
    assert_eq!(lines[1], format!("host: {}", hostname()));
    assert_eq!(lines[2], "uri : GET echo.test /hello?x=1");
    assert_eq!(lines[3], format!("client: {me}"));
    let date = lines[4].strip_prefix("date: ").expect(lines[4]);
    assert!(date.len() == 25 && &date[10..11] == "T", "{date}");
    let log = echo.next_line();
    assert!(
        log.contains(&me.to_string()) && log.contains("\"GET /hello?x=1 HTTP/1.1\" 200"),
        "one log line per request: {log}"
    );

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(TIMEOUT)).unwrap();
    udp.send_to(b"ping\n", ("127.0.0.1", udp_port)).unwrap();
    let mut buf = [0u8; 2048];
    let (len, from) = udp.recv_from(&mut buf).expect("a UDP answer");
    assert_eq!(from.port(), udp_port);
    assert_eq!(
        String::from_utf8_lossy(&buf[..len]),
        format!(
            "host: {}\nclient: {}\nping\n",
            hostname(),
            udp.local_addr().unwrap()
        )
    );
    assert!(echo.next_line().contains("udp 5 bytes"));

    let status = echo.terminate();
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn port_from_the_environment_serves_udp_on_the_same_port() {
    let port = free_port();
    let echo = Echo::start(&[], &[("PORT", port.to_string())]);
    let (head, body) = request(
        &mut connect(port),
        "POST /form HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("uri : POST 127.0.0.1 /form\n"), "{body}");

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(TIMEOUT)).unwrap();
    udp.send_to(b"x", ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 2048];
    let (len, _) = udp.recv_from(&mut buf).expect("a UDP answer on $PORT");
    assert!(String::from_utf8_lossy(&buf[..len]).ends_with("\nx"));
    drop(echo);
}

#[test]
fn sigterm_with_an_idle_keep_alive_connection_still_exits_0_promptly() {
    let port = free_port();
    let mut echo = Echo::start(&["--port".into(), port.to_string()], &[]);
    // A client that keeps its connection open, like a kube-proxy-ed
    // browser: graceful shutdown must not wait for it to hang up.
    let mut stream = connect(port);
    let (head, _) = request(&mut stream, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // terminate() fails the test if echo is still running after TIMEOUT.
    let status = echo.terminate();
    assert_eq!(status.code(), Some(0), "{status}");
    // And the server closed that connection.
    let mut rest = vec![];
    assert_eq!(stream.read_to_end(&mut rest).unwrap_or(0), 0);
}
