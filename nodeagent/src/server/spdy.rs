//! SPDY/3.1 frames: the multiplexing under `kubectl port-forward`.
//!
//! One connection carries many *streams*; each forwarded TCP connection
//! is two of them (its data, and an error channel). A frame is either a
//! data frame, for one stream, or a control frame:
//!
//! ```text
//! data:    |0| stream id (31) | flags (8) | length (24) | bytes...
//! control: |1| version (15)=3 | type (16) | flags (8) | length (24) | ...
//! ```
//!
//! - `SYN_STREAM` (1) opens a stream, with headers (`streamtype: data`,
//!   `port: 80`, `requestid: 0`); `SYN_REPLY` (2) accepts it;
//! - `RST_STREAM` (3) aborts one, `GOAWAY` (7) ends the connection;
//! - `PING` (6) is echoed; `SETTINGS` (4) and `WINDOW_UPDATE` (9) are read
//!   and ignored: Kubernetes' SPDY library (spdystream) does no flow
//!   control, so a peer that waited for window updates would stall;
//! - the `FIN` flag (1) on a data or `SYN` frame closes the sender's half.
//!
//! Header blocks are compressed with zlib, one stream per direction for the
//! whole connection (each block ends with a sync flush), and the peer's
//! stream starts from a preset dictionary of common header words, defined
//! by the SPDY/3 draft (section 2.6.10.1) - [`dictionary`].
//!
//! This file is a sans-I/O codec: [`Decoder`] turns bytes into frames,
//! [`Encoder`] frames into bytes; `portforward.rs` moves the bytes.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// SPDY version 3 (3.1 adds only flow control to the wire format).
const VERSION: u16 = 3;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// The flag that closes the sender's half of a stream.
const FIN: u8 = 0x01;

/// Frames over this are refused: header blocks and data chunks (kubectl
/// sends at most 32 KiB) are small.
const MAX_FRAME: usize = 1 << 20;

/// `RST_STREAM` status: the stream was refused or failed.
pub const INTERNAL_ERROR: u32 = 6;

/// Header names and values, names in lower case.
pub type Headers = Vec<(String, String)>;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        id: u32,
        fin: bool,
        headers: Headers,
    },
    SynReply {
        id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        id: u32,
        status: u32,
    },
    Ping(u32),
    GoAway {
        last_good: u32,
        status: u32,
    },
    Data {
        id: u32,
        fin: bool,
        data: Vec<u8>,
    },
    /// `SETTINGS`, `HEADERS`, `WINDOW_UPDATE`: nothing to do.
    Ignored,
}

/// The value of header `name` in a block.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Why the bytes are not SPDY/3.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("SPDY version {0} (only 3 is spoken)")]
    Version(u16),
    #[error("a frame of {0} bytes (at most {MAX_FRAME})")]
    TooLarge(usize),
    #[error("a {0} frame of {1} bytes is malformed")]
    Malformed(&'static str, usize),
    #[error("the header block cannot be read: {0}")]
    HeaderBlock(String),
}

/// The SPDY/3 header compression dictionary: these words, each after its
/// length (4 bytes, big endian), then this text as it is.
pub fn dictionary() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TEXT: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413",
        "414415416417502504505203 Non-Authoritative Information204 No Content",
        "301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 ",
        "Not Found500 Internal Server Error501 Not Implemented503 Service ",
        "UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8",
        "charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut out = Vec::with_capacity(1423);
    for word in WORDS {
        out.extend_from_slice(&(word.len() as u32).to_be_bytes());
        out.extend_from_slice(word.as_bytes());
    }
    out.extend_from_slice(TEXT.as_bytes());
    out
}

/// Reads frames from the bytes of a connection, as they come.
pub struct Decoder {
    buffer: Vec<u8>,
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            buffer: Vec::new(),
            inflate: Decompress::new(true),
        }
    }
}

impl Decoder {
    /// Adds `bytes`; returns the frames now complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Frame>, Error> {
        self.buffer.extend_from_slice(bytes);
        let mut frames = Vec::new();
        loop {
            if self.buffer.len() < 8 {
                break;
            }
            let length =
                u32::from_be_bytes([0, self.buffer[5], self.buffer[6], self.buffer[7]]) as usize;
            if length > MAX_FRAME {
                return Err(Error::TooLarge(length));
            }
            if self.buffer.len() < 8 + length {
                break;
            }
            let frame: Vec<u8> = self.buffer.drain(..8 + length).collect();
            frames.push(self.frame(&frame)?);
        }
        Ok(frames)
    }

    fn frame(&mut self, frame: &[u8]) -> Result<Frame, Error> {
        let word = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let flags = frame[4];
        let body = &frame[8..];
        let fin = flags & FIN != 0;
        if word & 0x8000_0000 == 0 {
            return Ok(Frame::Data {
                id: word & 0x7fff_ffff,
                fin,
                data: body.to_vec(),
            });
        }
        let version = ((word >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(Error::Version(version));
        }
        let u32_at = |at: usize| -> Option<u32> {
            body.get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let malformed = |kind| Error::Malformed(kind, body.len());
        Ok(match (word & 0xffff) as u16 {
            SYN_STREAM => {
                let id = u32_at(0).ok_or(malformed("SYN_STREAM"))? & 0x7fff_ffff;
                let block = body.get(10..).ok_or(malformed("SYN_STREAM"))?;
                Frame::SynStream {
                    id,
                    fin,
                    headers: self.headers(block)?,
                }
            }
            SYN_REPLY => {
                let id = u32_at(0).ok_or(malformed("SYN_REPLY"))? & 0x7fff_ffff;
                Frame::SynReply {
                    id,
                    fin,
                    headers: self.headers(&body[4..])?,
                }
            }
            RST_STREAM => Frame::RstStream {
                id: u32_at(0).ok_or(malformed("RST_STREAM"))? & 0x7fff_ffff,
                status: u32_at(4).ok_or(malformed("RST_STREAM"))?,
            },
            PING => Frame::Ping(u32_at(0).ok_or(malformed("PING"))?),
            GOAWAY => Frame::GoAway {
                last_good: u32_at(0).ok_or(malformed("GOAWAY"))? & 0x7fff_ffff,
                status: u32_at(4).unwrap_or(0),
            },
            HEADERS => {
                // Read to keep the compression stream in step.
                if body.len() > 4 {
                    self.headers(&body[4..])?;
                }
                Frame::Ignored
            }
            SETTINGS | WINDOW_UPDATE => Frame::Ignored,
            _ => Frame::Ignored,
        })
    }

    /// Decompresses one header block (the connection's zlib stream goes on
    /// from the previous one) and reads its name/value pairs.
    fn headers(&mut self, block: &[u8]) -> Result<Headers, Error> {
        let bad = |why: String| Error::HeaderBlock(why);
        let mut plain: Vec<u8> = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        loop {
            if plain.len() == plain.capacity() {
                plain.reserve(plain.len().max(256));
            }
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            let result = self
                .inflate
                .decompress_vec(input, &mut plain, FlushDecompress::Sync);
            let consumed = (self.inflate.total_in() - before_in) as usize;
            let produced = (self.inflate.total_out() - before_out) as usize;
            input = &input[consumed..];
            match result {
                // The peer's stream starts from the dictionary.
                Err(e) if e.needs_dictionary().is_some() => self
                    .inflate
                    .set_dictionary(&dictionary())
                    .map(|_| ())
                    .map_err(|e| bad(e.to_string()))?,
                Err(e) => return Err(bad(e.to_string())),
                Ok(Status::StreamEnd) => break,
                // All read, and room was left: the block is complete.
                Ok(_) if input.is_empty() && plain.len() < plain.capacity() => break,
                Ok(_) if consumed == 0 && produced == 0 && plain.len() < plain.capacity() => {
                    return Err(bad("the compressed block is cut short".into()))
                }
                Ok(_) => {}
            }
        }
        parse_block(&plain).ok_or_else(|| bad("the name/value pairs are cut short".into()))
    }
}

/// `count, (name length, name, value length, value)...`, 4-byte lengths.
fn parse_block(plain: &[u8]) -> Option<Headers> {
    let mut at = 0;
    let read_u32 = |at: &mut usize| -> Option<usize> {
        let b = plain.get(*at..*at + 4)?;
        *at += 4;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = read_u32(&mut at)?;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = read_u32(&mut at)?;
        let name = String::from_utf8_lossy(plain.get(at..at + n)?).to_lowercase();
        at += n;
        let n = read_u32(&mut at)?;
        // Several values are separated by NUL; the first is enough here.
        let value = String::from_utf8_lossy(plain.get(at..at + n)?)
            .split('\0')
            .next()
            .unwrap_or_default()
            .to_string();
        at += n;
        headers.push((name, value));
    }
    Some(headers)
}

/// Writes frames as bytes.
pub struct Encoder {
    deflate: Compress,
    dictionary_set: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            deflate: Compress::new(Compression::default(), true),
            dictionary_set: false,
        }
    }
}

impl Encoder {
    pub fn encode(&mut self, frame: &Frame) -> Vec<u8> {
        match frame {
            Frame::Data { id, fin, data } => {
                let mut out = Vec::with_capacity(8 + data.len());
                out.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&length_and_flags(*fin, data.len()));
                out.extend_from_slice(data);
                out
            }
            Frame::SynStream { id, fin, headers } => {
                let mut body = Vec::new();
                body.extend_from_slice(&id.to_be_bytes());
                body.extend_from_slice(&0u32.to_be_bytes());
                body.extend_from_slice(&[0, 0]);
                body.extend(self.header_block(headers));
                control(SYN_STREAM, *fin, &body)
            }
            Frame::SynReply { id, fin, headers } => {
                let mut body = id.to_be_bytes().to_vec();
                body.extend(self.header_block(headers));
                control(SYN_REPLY, *fin, &body)
            }
            Frame::RstStream { id, status } => {
                let mut body = id.to_be_bytes().to_vec();
                body.extend_from_slice(&status.to_be_bytes());
                control(RST_STREAM, false, &body)
            }
            Frame::Ping(id) => control(PING, false, &id.to_be_bytes()),
            Frame::GoAway { last_good, status } => {
                let mut body = last_good.to_be_bytes().to_vec();
                body.extend_from_slice(&status.to_be_bytes());
                control(GOAWAY, false, &body)
            }
            Frame::Ignored => Vec::new(),
        }
    }

    /// The compressed header block, sync-flushed so that the peer can read
    /// it at once.
    fn header_block(&mut self, headers: &Headers) -> Vec<u8> {
        if !self.dictionary_set {
            self.deflate
                .set_dictionary(&dictionary())
                .expect("a fresh zlib stream takes a dictionary");
            self.dictionary_set = true;
        }
        let mut plain = Vec::new();
        plain.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            let name = name.to_lowercase();
            plain.extend_from_slice(&(name.len() as u32).to_be_bytes());
            plain.extend_from_slice(name.as_bytes());
            plain.extend_from_slice(&(value.len() as u32).to_be_bytes());
            plain.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut input = plain.as_slice();
        loop {
            out.reserve(256);
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("deflating into a growing buffer");
            input = &input[(self.deflate.total_in() - before) as usize..];
            // Done when all input is taken and the flush fit in the buffer.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        out
    }
}

fn length_and_flags(fin: bool, length: usize) -> [u8; 4] {
    let mut word = (length as u32 & 0x00ff_ffff).to_be_bytes();
    word[0] = if fin { FIN } else { 0 };
    word
}

fn control(kind: u16, fin: bool, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&length_and_flags(fin, body.len()));
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_dictionary_is_the_drafts() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..11], b"\0\0\0\x07options");
        assert!(d.ends_with(b"enq=0."));
    }

    #[test]
    fn frames_round_trip_and_header_blocks_share_one_zlib_stream() {
        let mut encoder = Encoder::default();
        let mut decoder = Decoder::default();
        let frames = vec![
            Frame::SynStream {
                id: 1,
                fin: false,
                headers: headers(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynStream {
                id: 3,
                fin: false,
                headers: headers(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::Data {
                id: 3,
                fin: false,
                data: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            },
            Frame::Data {
                id: 1,
                fin: true,
                data: Vec::new(),
            },
            Frame::Ping(7),
            Frame::RstStream {
                id: 3,
                status: INTERNAL_ERROR,
            },
            Frame::GoAway {
                last_good: 3,
                status: 0,
            },
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(|f| encoder.encode(f)).collect();
        // Fed in awkward pieces, as a network delivers them.
        let mut decoded = Vec::new();
        for piece in bytes.chunks(5) {
            decoded.extend(decoder.push(piece).unwrap());
        }
        assert_eq!(decoded, frames);
        assert_eq!(
            header(
                &decoded
                    .first()
                    .map(|f| match f {
                        Frame::SynStream { headers, .. } => headers.clone(),
                        _ => Vec::new(),
                    })
                    .unwrap(),
                "Port"
            ),
            Some("80")
        );
    }

    #[test]
    fn other_versions_and_huge_frames_are_refused() {
        let mut decoder = Decoder::default();
        assert_eq!(
            decoder.push(&[0x80, 0x02, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]),
            Err(Error::Version(2))
        );
        let mut decoder = Decoder::default();
        assert_eq!(
            decoder.push(&[0, 0, 0, 1, 0, 0xff, 0xff, 0xff]),
            Err(Error::TooLarge(0xff_ffff))
        );
    }
}
