//! Stratum V1 line framing: bytes in, complete lines out, with a size limit.
//!
//! Stratum V1 is newline-delimited JSON. The framer buffers whatever the socket gave it and hands
//! out each complete line (without the `\n` and a trailing `\r`), as bytes: UTF-8 is checked by
//! the session, which answers invalid text with a JSON-RPC error instead of dropping the miner. A
//! line longer than the limit is a protocol violation the server answers by disconnecting (a
//! miner's longest honest line, a submit with version bits, is under 300 bytes).

use thiserror::Error;

/// The default maximum line length: 16 KiB.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024;
/// Buffer capacity a drained framer keeps: a read's worth of pipelined submits (a busy
/// connection does not allocate per read); an idle one never grew past its handshake lines.
const KEPT_CAPACITY: usize = 4096;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// A line exceeded the limit; the connection should be closed.
    #[error("line longer than {max} bytes")]
    LineTooLong { max: usize },
}

/// Splits a byte stream into lines of at most `max_line` bytes.
///
/// Use: `framer.feed(&bytes_from_socket)`, then call [`LineFramer::next_line`] until it returns
/// `Ok(None)`. After an `Err`, the framer is poisoned: every later call returns the same error.
#[derive(Debug)]
pub struct LineFramer {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out; compacted lazily on `feed`.
    start: usize,
    /// Bytes of `buf[start..]` known to contain no newline.
    scanned: usize,
    max_line: usize,
    failed: bool,
}

impl LineFramer {
    pub fn new(max_line: usize) -> LineFramer {
        LineFramer {
            // Allocated on the first bytes: most of a connection's life has no partial line.
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max_line: max_line.max(1),
            failed: false,
        }
    }

    /// Appends bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line, `Ok(None)` when more bytes are needed, or an error when the
    /// pending line already exceeds the limit (then the connection should be closed).
    /// Empty lines (keep-alive newlines) are skipped.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, FrameError> {
        loop {
            if self.failed {
                return Err(FrameError::LineTooLong { max: self.max_line });
            }
            let pending = &self.buf[self.start..];
            let Some(pos) = pending[self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|p| p + self.scanned)
            else {
                self.scanned = pending.len();
                // One byte of slack for a '\r' that the coming '\n' will strip, so the outcome
                // does not depend on where the stream was split.
                let over = pending.len() > self.max_line + 1
                    || (pending.len() == self.max_line + 1 && pending.last() != Some(&b'\r'));
                if over {
                    self.failed = true;
                    continue;
                }
                return Ok(None);
            };
            let mut end = pos;
            if end > 0 && pending[end - 1] == b'\r' {
                end -= 1;
            }
            if end > self.max_line {
                self.failed = true;
                continue;
            }
            let line_start = self.start;
            self.start += pos + 1;
            self.scanned = 0;
            if end == 0 {
                continue;
            }
            return Ok(Some(&self.buf[line_start..line_start + end]));
        }
    }

    /// Once every buffered line has been handed out, gives the buffer's memory back if it grew
    /// past a few lines (an idle connection then holds nothing here).
    pub fn release_if_drained(&mut self) {
        if self.start == self.buf.len() {
            self.start = 0;
            self.scanned = 0;
            if self.buf.capacity() > KEPT_CAPACITY {
                self.buf = Vec::new();
            } else {
                self.buf.clear();
            }
        }
    }

    /// Bytes buffered but not yet returned as a line.
    pub fn pending_len(&self) -> usize {
        self.buf.len() - self.start
    }
}

impl Default for LineFramer {
    fn default() -> Self {
        LineFramer::new(DEFAULT_MAX_LINE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(f: &mut LineFramer) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(line) = f.next_line().unwrap() {
            out.push(line.to_vec());
        }
        out
    }

    #[test]
    fn splits_lines_across_reads_and_strips_crlf() {
        let mut f = LineFramer::new(64);
        f.feed(b"{\"a\":1}\r\n{\"b\"");
        assert_eq!(drain(&mut f), vec![b"{\"a\":1}".to_vec()]);
        f.feed(b":2}\n\n\nxyz");
        assert_eq!(drain(&mut f), vec![b"{\"b\":2}".to_vec()]);
        assert_eq!(f.pending_len(), 3);
        f.feed(b"\n");
        assert_eq!(drain(&mut f), vec![b"xyz".to_vec()]);
        assert_eq!(f.pending_len(), 0);
    }

    #[test]
    fn oversize_line_is_an_error_with_or_without_newline() {
        let mut f = LineFramer::new(8);
        f.feed(b"123456789");
        assert_eq!(f.next_line(), Err(FrameError::LineTooLong { max: 8 }));
        f.feed(b"\n");
        assert!(f.next_line().is_err(), "a failed framer stays failed");

        let mut f = LineFramer::new(8);
        f.feed(b"12345678\r");
        assert_eq!(f.next_line(), Ok(None), "the '\\r' may still be stripped");
        f.feed(b"\n123456789\n");
        assert_eq!(f.next_line().unwrap(), Some(b"12345678".as_slice()));
        assert!(f.next_line().is_err());
    }

    #[test]
    fn a_drained_framer_gives_its_memory_back_and_keeps_a_partial_line() {
        let mut f = LineFramer::new(16 * 1024);
        f.feed(&[b'x'; 6000]);
        f.feed(b"\nabc");
        assert_eq!(drain(&mut f).len(), 1);
        f.release_if_drained();
        assert_eq!(f.pending_len(), 3, "a partial line stays");
        f.feed(b"\n");
        assert_eq!(drain(&mut f), vec![b"abc".to_vec()]);
        f.release_if_drained();
        assert_eq!(f.buf.capacity(), 0);
        f.feed(b"{\"a\":1}\n");
        assert_eq!(drain(&mut f), vec![b"{\"a\":1}".to_vec()]);
    }
}
