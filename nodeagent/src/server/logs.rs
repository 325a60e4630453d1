//! `kubectl logs`: a container's output, read back from its log files.
//!
//! A container runtime does not keep output in memory: it writes every
//! line the container prints into a file on the node, one file per
//! container instance (containerd: `/var/log/pods/<ns>_<pod>_<uid>/<container>/<restart>.log`),
//! in the *CRI log format*:
//!
//! ```text
//! 2026-12-02T17:49:07.123456789Z stdout F GET / 200
//! 2026-12-02T17:49:07.200000000Z stderr P a very long li
//! 2026-12-02T17:49:07.200000100Z stderr F ne, split in two
//! ```
//!
//! timestamp (RFC 3339, UTC, nanoseconds), stream, `F` for a full line or
//! `P` for a partial one that the next entry continues, and the content.
//! The kubelet answers `GET /containerLogs/{ns}/{pod}/{container}` by
//! reading those files, oldest first, and printing the contents only (or
//! with `timestamps=true`, the timestamp first), after the filters of
//! `kubectl logs`: `tailLines`, `sinceSeconds`/`sinceTime`, `limitBytes`;
//! `previous=true` reads the instance before a restart; `follow=true`
//! keeps the answer open and sends new lines as they are written, until
//! the container stops.
//!
//! Reading happens on a blocking thread (files are blocking I/O) that
//! feeds the chunked HTTP answer through a small channel: a slow client
//! slows the reader down instead of filling memory.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::sync::mpsc;

use super::{error_response, parse_bool, query_pairs, Containers};

/// How often a followed log is checked for new lines (the kubelet uses
/// inotify; polling is simpler and bounded).
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// How much output is gathered before it is sent as one HTTP chunk.
const CHUNK: usize = 32 * 1024;

/// The options of `kubectl logs`, from the query string (`PodLogOptions`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// Stop after that many bytes.
    pub limit_bytes: Option<u64>,
    /// Only lines written at or after this time (`sinceSeconds` or
    /// `sinceTime`).
    pub since: Option<Timestamp>,
}

impl LogOptions {
    /// Parses the query; `now` anchors `sinceSeconds`.
    pub fn from_query(query: Option<&str>, now: Timestamp) -> Result<LogOptions, String> {
        let mut opts = LogOptions::default();
        let mut since_seconds = None;
        let mut since_time = None;
        for (key, value) in query_pairs(query) {
            match key.as_str() {
                "follow" => opts.follow = parse_bool(&key, &value)?,
                "previous" => opts.previous = parse_bool(&key, &value)?,
                "timestamps" => opts.timestamps = parse_bool(&key, &value)?,
                // `tail` is the old name the kubelet still accepts.
                "tailLines" | "tail" if value == "all" => opts.tail_lines = None,
                "tailLines" | "tail" => {
                    opts.tail_lines = Some(value.parse().map_err(|_| {
                        format!("invalid tailLines {value:?}: must be an integer >= 0")
                    })?)
                }
                "limitBytes" => {
                    let n: u64 = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("invalid limitBytes {value:?}: must be an integer > 0")
                    })?;
                    opts.limit_bytes = Some(n);
                }
                "sinceSeconds" => {
                    let n: i64 = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("invalid sinceSeconds {value:?}: must be an integer > 0")
                    })?;
                    since_seconds = Some(n);
                }
                "sinceTime" => {
                    since_time = Some(value.parse::<Timestamp>().map_err(|_| {
                        format!("invalid sinceTime {value:?}: must be an RFC 3339 time")
                    })?)
                }
                _ => {}
            }
        }
        opts.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err("at most one of sinceTime or sinceSeconds may be specified".into())
            }
            (Some(s), None) => now.checked_sub(SignedDuration::from_secs(s)).ok(),
            (None, t) => t,
        };
        Ok(opts)
    }
}

/// Which output of the container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One entry of a CRI log file.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry<'a> {
    /// As written in the file (printed back with `timestamps=true`).
    pub timestamp: &'a str,
    pub time: Timestamp,
    pub stream: LogStream,
    /// `P`: the line goes on in the next entry.
    pub partial: bool,
    /// The text, without the line's `\n`.
    pub content: &'a [u8],
}

/// Parses one line (without its `\n`) of a CRI log file; `None` for a
/// line that is not in the format (the kubelet skips those).
pub fn parse_line(line: &[u8]) -> Option<LogEntry<'_>> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let timestamp = std::str::from_utf8(fields.next()?).ok()?;
    let time = timestamp.parse::<Timestamp>().ok()?;
    let stream = match fields.next()? {
        b"stdout" => LogStream::Stdout,
        b"stderr" => LogStream::Stderr,
        _ => return None,
    };
    let partial = match fields.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    let content = fields.next().unwrap_or_default();
    Some(LogEntry {
        timestamp,
        time,
        stream,
        partial,
        content,
    })
}

/// `GET /containerLogs/{namespace}/{pod}/{container}`.
pub async fn handle(
    State(containers): State<Arc<dyn Containers>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let opts = match LogOptions::from_query(query.as_deref(), Timestamp::now()) {
        Ok(opts) => opts,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, message),
    };
    let log = match containers.logs(&namespace, &pod, &container, opts.previous) {
        Ok(log) => log,
        Err(e) => return e.into_response(),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        let running = || !opts.previous && containers.is_running(&namespace, &pod, &container);
        if let Err(e) = copy_log(&log.files, &opts, running, tx) {
            tracing::warn!(%namespace, %pod, %container, error = %e, "reading the container log");
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    (
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(body),
    )
        .into_response()
}

/// Writes the log described by `files` and `opts` to `tx`, following it
/// while `running()` says the container still runs. Returns when all is
/// sent, the byte limit is reached or the client went away.
pub fn copy_log(
    files: &[PathBuf],
    opts: &LogOptions,
    running: impl Fn() -> bool,
    tx: mpsc::Sender<Bytes>,
) -> io::Result<()> {
    let mut out = Output::new(tx, opts.limit_bytes);
    let mut lines = Renderer::new(opts);
    let mut cursor = Cursor::new(files.to_vec());
    // What is there now: with `tailLines`, only the last lines are kept.
    match opts.tail_lines {
        Some(n) => {
            let mut last: VecDeque<Vec<u8>> = VecDeque::new();
            let mut current = Vec::new();
            cursor.read_lines(|line| {
                if let Some(entry) = parse_line(line) {
                    let complete = lines.render(&entry, &mut current);
                    if complete {
                        last.push_back(std::mem::take(&mut current));
                        if last.len() > n {
                            last.pop_front();
                        }
                    }
                }
                true
            })?;
            if n > 0 && !current.is_empty() {
                // A line still being written counts as the last one.
                last.push_back(current);
                if last.len() > n {
                    last.pop_front();
                }
            }
            for line in last {
                if !out.write(&line) {
                    return Ok(());
                }
            }
        }
        None => {
            let mut buf = Vec::new();
            let mut open = true;
            cursor.read_lines(|line| {
                if let Some(entry) = parse_line(line) {
                    buf.clear();
                    lines.render(&entry, &mut buf);
                    open = out.write(&buf);
                }
                open
            })?;
            if !open {
                return Ok(());
            }
        }
    }
    if !out.flush() {
        return Ok(());
    }
    if !opts.follow {
        return Ok(());
    }
    // Follow: new lines as the last file grows, until the container stops.
    let mut buf = Vec::new();
    loop {
        // Checked before reading: once stopped, this read gets everything.
        let still_running = running();
        let mut open = true;
        cursor.read_lines(|line| {
            if let Some(entry) = parse_line(line) {
                buf.clear();
                lines.render(&entry, &mut buf);
                open = out.write(&buf);
            }
            open
        })?;
        if !open || !out.flush() || !still_running {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
        if out.tx.is_closed() {
            return Ok(());
        }
    }
}

/// Turns entries into output text: the content, a `\n` after full lines,
/// and with `timestamps` the timestamp before each line (once for a line
/// split into partial entries).
struct Renderer {
    timestamps: bool,
    since: Option<Timestamp>,
    at_line_start: bool,
}

impl Renderer {
    fn new(opts: &LogOptions) -> Renderer {
        Renderer {
            timestamps: opts.timestamps,
            since: opts.since,
            at_line_start: true,
        }
    }

    /// Appends `entry` to `out`; true when it ends a line.
    fn render(&mut self, entry: &LogEntry<'_>, out: &mut Vec<u8>) -> bool {
        if self.since.is_some_and(|since| entry.time < since) {
            return false;
        }
        if self.timestamps && self.at_line_start {
            out.extend_from_slice(entry.timestamp.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(entry.content);
        if !entry.partial {
            out.push(b'\n');
        }
        self.at_line_start = !entry.partial;
        !entry.partial
    }
}

/// The answer being sent: chunks of [`CHUNK`] bytes, cut at `limitBytes`.
struct Output {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    remaining: Option<u64>,
}

impl Output {
    fn new(tx: mpsc::Sender<Bytes>, limit: Option<u64>) -> Output {
        Output {
            tx,
            buf: Vec::with_capacity(CHUNK),
            remaining: limit,
        }
    }

    /// Queues `data`; false when nothing more should be written (limit
    /// reached or client gone).
    fn write(&mut self, data: &[u8]) -> bool {
        let take = match self.remaining {
            Some(r) => data.len().min(usize::try_from(r).unwrap_or(usize::MAX)),
            None => data.len(),
        };
        self.buf.extend_from_slice(&data[..take]);
        if let Some(r) = &mut self.remaining {
            *r -= take as u64;
            if *r == 0 {
                self.flush();
                return false;
            }
        }
        if self.buf.len() >= CHUNK {
            return self.flush();
        }
        true
    }

    /// Sends what is queued; false when the client went away.
    fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return !self.tx.is_closed();
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(chunk).is_ok()
    }
}

/// A reading position in a list of log files, oldest first; only the last
/// one grows. The file being read stays open: when the runtime rotates the
/// log (renames it to `<log>.1` and starts a new one), the rest of the old
/// file is still read before the new one.
struct Cursor {
    files: Vec<PathBuf>,
    index: usize,
    open: Option<BufReader<File>>,
    /// The start of a line whose `\n` is not written yet.
    pending: Vec<u8>,
}

impl Cursor {
    fn new(files: Vec<PathBuf>) -> Cursor {
        Cursor {
            files,
            index: 0,
            open: None,
            pending: Vec::new(),
        }
    }

    /// Calls `line` with every complete line written since the last call
    /// (without its `\n`), until it returns false.
    fn read_lines(&mut self, mut line: impl FnMut(&[u8]) -> bool) -> io::Result<()> {
        while self.index < self.files.len() {
            let last = self.index + 1 == self.files.len();
            if self.open.is_none() {
                match File::open(&self.files[self.index]) {
                    Ok(file) => self.open = Some(BufReader::new(file)),
                    // The current file may not exist before the first line.
                    Err(e) if e.kind() == io::ErrorKind::NotFound && last => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            if let Some(reader) = &mut self.open {
                loop {
                    let n = reader.read_until(b'\n', &mut self.pending)?;
                    if n == 0 {
                        break;
                    }
                    if self.pending.last() == Some(&b'\n') {
                        self.pending.pop();
                        let keep_going = line(&self.pending);
                        self.pending.clear();
                        if !keep_going {
                            return Ok(());
                        }
                    }
                }
                if last && !self.rotated()? {
                    return Ok(());
                }
            }
            // This file is complete, even without a final `\n`.
            if !self.pending.is_empty() {
                let rest = std::mem::take(&mut self.pending);
                if !line(&rest) {
                    return Ok(());
                }
            }
            self.open = None;
            if last {
                // Rotated: the path now names a new file.
                continue;
            }
            self.index += 1;
        }
        Ok(())
    }

    /// Whether the open last file is no longer the one at its path.
    fn rotated(&mut self) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt as _;
        let Some(reader) = &self.open else {
            return Ok(false);
        };
        let open = reader.get_ref().metadata()?;
        Ok(match std::fs::metadata(&self.files[self.index]) {
            Ok(now) => now.ino() != open.ino() || now.dev() != open.dev(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cri_lines() {
        let e = parse_line(b"2026-12-02T17:49:07.123456789Z stdout F GET / 200").unwrap();
        assert_eq!(e.timestamp, "2026-12-02T17:49:07.123456789Z");
        assert_eq!(e.stream, LogStream::Stdout);
        assert!(!e.partial);
        assert_eq!(e.content, b"GET / 200");
        let e = parse_line(b"2026-12-02T17:49:07Z stderr P ").unwrap();
        assert!(e.partial);
        assert_eq!(e.content, b"");
        let e = parse_line(b"2026-12-02T17:49:07Z stdout F").unwrap();
        assert_eq!(e.content, b"");
        assert!(parse_line(b"not a log line").is_none());
        assert!(parse_line(b"2026-12-02T17:49:07Z stdin F x").is_none());
    }

    #[test]
    fn options_from_the_query() {
        let now: Timestamp = "2026-12-02T18:00:00Z".parse().unwrap();
        let o = LogOptions::from_query(
            Some("follow=true&tailLines=5&timestamps=1&sinceSeconds=60&limitBytes=10"),
            now,
        )
        .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(5));
        assert_eq!(o.limit_bytes, Some(10));
        assert_eq!(o.since, Some("2026-12-02T17:59:00Z".parse().unwrap()));
        assert!(LogOptions::from_query(Some("tailLines=-1"), now).is_err());
        assert!(
            LogOptions::from_query(Some("sinceSeconds=1&sinceTime=2026-12-02T17:00:00Z"), now)
                .is_err()
        );
        assert!(LogOptions::from_query(Some("follow=maybe"), now).is_err());
        assert_eq!(
            LogOptions::from_query(Some("tail=all"), now)
                .unwrap()
                .tail_lines,
            None
        );
    }

    #[test]
    fn partial_lines_get_one_timestamp() {
        let opts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        let mut r = Renderer::new(&opts);
        let mut out = Vec::new();
        assert!(!r.render(
            &parse_line(b"2026-12-02T17:49:07Z stdout P ab").unwrap(),
            &mut out
        ));
        assert!(r.render(
            &parse_line(b"2026-12-02T17:49:08Z stdout F cd").unwrap(),
            &mut out
        ));
        assert_eq!(out, b"2026-12-02T17:49:07Z abcd\n");
    }
}
