//! The `channel.k8s.io` protocol: several byte streams over one WebSocket.
//!
//! `kubectl exec` needs more than one stream between the user's terminal
//! and the process: its stdin, stdout and stderr, the terminal's size, and
//! at the end the command's exit status. A WebSocket carries messages, not
//! streams, so Kubernetes puts a *channel* number in the first byte of
//! every binary message:
//!
//! | byte | channel | direction | content |
//! |------|---------|-----------|---------|
//! | 0    | stdin   | client -> server | bytes for the process |
//! | 1    | stdout  | server -> client | bytes from the process |
//! | 2    | stderr  | server -> client | bytes from the process |
//! | 3    | error   | server -> client | a `Status` JSON: how the command ended |
//! | 4    | resize  | client -> server | `{"Width":80,"Height":24}` |
//! | 255  | close   | both             | `[255, n]`: stream n has ended (v5) |
//!
//! The version is the WebSocket subprotocol: `v4.channel.k8s.io` made the
//! error channel a JSON `Status`; `v5.channel.k8s.io` added the close
//! signal, so that `echo hi | kubectl exec -i pod -- cat` can tell `cat`
//! its input is over while output keeps flowing. kubectl 1.35 asks only for
//! v5; kube-rs asks for v5 and v4.

use serde::Deserialize;
use serde_json::{json, Value};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// The command's end, as a `Status` (v4 and later).
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// `[255, channel]`: that channel is closed (v5).
pub const CLOSE: u8 = 255;

/// The subprotocol versions this server speaks, most preferred first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V5,
    V4,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::V5, Protocol::V4];

    /// The `Sec-WebSocket-Protocol` name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V5 => "v5.channel.k8s.io",
            Protocol::V4 => "v4.channel.k8s.io",
        }
    }

    /// The best version both sides speak, from the client's
    /// `Sec-WebSocket-Protocol` values (comma-separated lists).
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<Protocol> {
        let offered: Vec<&str> = offered
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        Protocol::ALL
            .into_iter()
            .find(|p| offered.contains(&p.name()))
    }
}

/// A message for the client: the channel byte, then the data.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(data.len() + 1);
    message.push(channel);
    message.extend_from_slice(data);
    message
}

/// The terminal's size, sent by the client on the resize channel. Go's
/// `remotecommand.TerminalSize` has no JSON tags, hence the capitals (Go
/// reads either case; so do we).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width", alias = "width")]
    pub width: u16,
    #[serde(rename = "Height", alias = "height")]
    pub height: u16,
}

/// What a client message asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    Stdin(&'a [u8]),
    /// `[255, 0]`: no more input (v5).
    CloseStdin,
    Resize(TerminalSize),
    /// Empty, another channel, or a resize that is not JSON: ignored.
    Ignored,
}

/// Reads one binary message from the client.
pub fn decode(message: &[u8]) -> Incoming<'_> {
    match message {
        [STDIN, data @ ..] => Incoming::Stdin(data),
        [CLOSE, STDIN, ..] => Incoming::CloseStdin,
        [RESIZE, json @ ..] => serde_json::from_slice(json)
            .map(Incoming::Resize)
            .unwrap_or(Incoming::Ignored),
        _ => Incoming::Ignored,
    }
}

/// The `Status` sent on the error channel for a command that exited 0.
pub fn success() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

/// The `Status` for a command that exited with `code` != 0: kubectl reads
/// the `ExitCode` cause and exits with the same code.
pub fn exit_code(command: &[String], code: i32) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The `Status` for a command that could not be run at all.
pub fn internal_error(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: error executing command in container: {message}"),
        "reason": "InternalError",
        "code": 500,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_the_best_common_version() {
        assert_eq!(
            Protocol::negotiate(["v4.channel.k8s.io, v5.channel.k8s.io"]),
            Some(Protocol::V5)
        );
        assert_eq!(
            Protocol::negotiate(["channel.k8s.io", "v4.channel.k8s.io"]),
            Some(Protocol::V4)
        );
        assert_eq!(Protocol::negotiate(["v3.channel.k8s.io"]), None);
    }

    #[test]
    fn decodes_client_messages() {
        assert_eq!(decode(&[0, b'h', b'i']), Incoming::Stdin(b"hi"));
        assert_eq!(decode(&[255, 0]), Incoming::CloseStdin);
        assert_eq!(
            decode(b"\x04{\"Width\":80,\"Height\":24}"),
            Incoming::Resize(TerminalSize {
                width: 80,
                height: 24
            })
        );
        assert_eq!(
            decode(b"\x04{\"width\":1,\"height\":2}"),
            Incoming::Resize(TerminalSize {
                width: 1,
                height: 2
            })
        );
        assert_eq!(decode(b"\x04nope"), Incoming::Ignored);
        assert_eq!(decode(&[]), Incoming::Ignored);
    }

    #[test]
    fn exit_status_has_the_code_as_a_cause() {
        let s = exit_code(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(
            serde_json::to_string(&success()).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
    }
}
