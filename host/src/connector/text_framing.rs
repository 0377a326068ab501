//! Text records over a TCP byte stream: newline-terminated lines
//! (RFC 6587 §3.4.2, "non-transparent framing"), octet-counted frames
//! (`LEN SP MSG`, RFC 6587 §3.4.1), or either, decided frame by frame
//! (`LEN SP <PRI>` is octet-counted, anything else is a line).

use crate::config::TcpFraming;

/// A record longer than this is discarded (counted) unless a connector's
/// `max_message_bytes` says otherwise; the same for every text source.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 10;

#[derive(Debug, PartialEq, Eq)]
pub struct FramingError(pub String);

/// Turns stream chunks into complete records, each ending in `\n`.
pub struct TextFramer {
    framing: TcpFraming,
    max: usize,
    buf: Vec<u8>,
    /// Bytes of an oversized record still to skip: `Some(n)` for an
    /// octet-counted frame, `None` with `discarding_line` for a line.
    skip: usize,
    discarding_line: bool,
    /// Records discarded for their size since the last `take_oversized`.
    oversized: u64,
}

impl TextFramer {
    pub fn new(framing: TcpFraming, max_message_bytes: usize) -> Self {
        TextFramer {
            framing,
            max: max_message_bytes,
            buf: Vec::new(),
            skip: 0,
            discarding_line: false,
            oversized: 0,
        }
    }

    /// Appends the complete records in `data` (and what was buffered) to
    /// `out`. An error means the stream cannot be framed any more.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), FramingError> {
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            if rest.is_empty() {
                break;
            }
            if self.discarding_line {
                match rest.iter().position(|b| *b == b'\n') {
                    Some(p) => {
                        self.discarding_line = false;
                        at += p + 1;
                        continue;
                    }
                    None => {
                        at = self.buf.len();
                        break;
                    }
                }
            }
            let Some(counted) = self.frame_is_counted(rest) else {
                break; // cannot tell yet
            };
            if counted {
                let Some(space) = rest.iter().take(11).position(|b| *b == b' ') else {
                    if rest.len() > 10 || rest.iter().any(|b| !b.is_ascii_digit()) {
                        return Err(FramingError(format!(
                            "octet-counted frame expected, got {:?}",
                            String::from_utf8_lossy(&rest[..rest.len().min(20)])
                        )));
                    }
                    break; // length not complete yet
                };
                let len: usize = std::str::from_utf8(&rest[..space])
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        FramingError(format!(
                            "bad octet count {:?}",
                            String::from_utf8_lossy(&rest[..space])
                        ))
                    })?;
                let frame_start = at + space + 1;
                if len > self.max {
                    self.oversized += 1;
                    let available = self.buf.len() - frame_start;
                    if available >= len {
                        at = frame_start + len;
                        continue;
                    }
                    self.skip = len - available;
                    at = self.buf.len();
                    break;
                }
                if self.buf.len() - frame_start < len {
                    break;
                }
                let frame = &self.buf[frame_start..frame_start + len];
                let frame = frame.strip_suffix(b"\n").unwrap_or(frame);
                // One record per frame, even if the sender put newlines in it.
                out.extend(frame.iter().map(|b| if *b == b'\n' { b' ' } else { *b }));
                out.push(b'\n');
                at = frame_start + len;
            } else {
                match rest.iter().position(|b| *b == b'\n') {
                    Some(p) if p <= self.max => {
                        out.extend_from_slice(&rest[..=p]);
                        at += p + 1;
                    }
                    Some(p) => {
                        self.oversized += 1;
                        at += p + 1;
                    }
                    None if rest.len() > self.max => {
                        self.oversized += 1;
                        self.discarding_line = true;
                        at = self.buf.len();
                    }
                    None => break,
                }
            }
        }
        self.buf.drain(..at);
        Ok(())
    }

    /// Whether the record starting at `rest` is octet-counted; `None`: too
    /// few bytes to tell.
    fn frame_is_counted(&self, rest: &[u8]) -> Option<bool> {
        match self.framing {
            TcpFraming::OctetCounting => Some(true),
            TcpFraming::Syslog => syslog_frame_is_counted(rest),
            _ => Some(false),
        }
    }

    /// How many records were discarded for their size since the last call.
    pub fn take_oversized(&mut self) -> u64 {
        std::mem::take(&mut self.oversized)
    }

    pub fn max_message_bytes(&self) -> usize {
        self.max
    }

    /// Bytes held back: the start of a record not complete yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Forgets what is buffered (the source was truncated or replaced).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.skip = 0;
        self.discarding_line = false;
    }

    /// At the end of the stream: a last line without its newline still counts.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        // A partial octet-counted frame (or one that might be) is cut, not a line.
        let counted_partial = self.frame_is_counted(&self.buf) != Some(false);
        if !self.buf.is_empty() && !self.discarding_line && !counted_partial {
            out.extend_from_slice(&self.buf);
            out.push(b'\n');
        }
        self.buf.clear();
    }
}

/// Whether a syslog frame starting at `rest` is octet-counted: `LEN SP <`
/// (a length, then the message's `<PRI>`). Anything else is a line, so a
/// text record that starts with a number (`2 123456789012 eni-…`) is not
/// taken for a length. `None`: too few bytes to tell.
fn syslog_frame_is_counted(rest: &[u8]) -> Option<bool> {
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || rest[0] == b'0' || digits > 10 {
        return Some(false);
    }
    match (rest.get(digits), rest.get(digits + 1)) {
        (None, _) | (Some(b' '), None) => None,
        (Some(b' '), Some(b'<')) => Some(true),
        _ => Some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(framing: TcpFraming, chunks: &[&[u8]]) -> (String, u64) {
        let mut framer = TextFramer::new(framing, 16);
        let mut out = Vec::new();
        for chunk in chunks {
            framer.feed(chunk, &mut out).unwrap();
        }
        framer.finish(&mut out);
        (String::from_utf8(out).unwrap(), framer.take_oversized())
    }

    #[test]
    fn lines_across_chunks_and_a_last_line_without_newline() {
        let (out, _) = frame(TcpFraming::Newline, &[b"a=1 b", b"=2\nc=3\r\n", b"d=4"]);
        assert_eq!(out, "a=1 b=2\nc=3\r\nd=4\n");
    }

    #[test]
    fn octet_counted_frames_split_anywhere() {
        let (out, _) = frame(TcpFraming::OctetCounting, &[b"5 hel", b"lo3 a", b"\nb11 x"]);
        assert_eq!(
            out, "hello\na b\n",
            "embedded newline becomes a space; cut frame dropped"
        );
        let mut framer = TextFramer::new(TcpFraming::OctetCounting, 16);
        let err = framer.feed(b"abc def", &mut Vec::new()).unwrap_err();
        assert!(err.0.contains("octet"), "{err:?}");
    }

    #[test]
    fn syslog_framing_decides_per_frame() {
        let (out, _) = frame(TcpFraming::Syslog, &[b"<13>x=1\n7 <13>y=2", b"<13>z=3\n"]);
        assert_eq!(out, "<13>x=1\n<13>y=2\n<13>z=3\n");
        // Lines that start with a number are lines, not lengths.
        let (out, _) = frame(
            TcpFraming::Syslog,
            &[b"2 12 eni 10.0.1\n10.0.0.1,", b"443\n1", b"5\n"],
        );
        assert_eq!(out, "2 12 eni 10.0.1\n10.0.0.1,443\n15\n");
        // Undecided at a chunk's end: wait for the next byte.
        let (out, _) = frame(TcpFraming::Syslog, &[b"7", b" ", b"<1>abcd"]);
        assert_eq!(out, "<1>abcd\n");
    }

    #[test]
    fn oversized_records_are_skipped_and_counted() {
        let (out, oversized) = frame(
            TcpFraming::Newline,
            &[
                b"0123456789abcdefXYZ",
                b"more\nok\n",
                b"0123456789abcdef0\nfine",
            ],
        );
        assert_eq!((out.as_str(), oversized), ("ok\nfine\n", 2));
        let (out, oversized) = frame(
            TcpFraming::OctetCounting,
            &[b"20 0123456789", b"0123456789", b"2 ok"],
        );
        assert_eq!((out.as_str(), oversized), ("ok\n", 1));
    }
}
