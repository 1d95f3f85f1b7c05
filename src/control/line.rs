//! Bounded line reading: a line longer than the bound is skipped without being stored.

use super::transport::Conn;
use std::io::{self, ErrorKind};
use std::time::Instant;

/// What the next line turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A complete line, without its `\n` (or `\r\n`).
    Text(Vec<u8>),
    /// A line over the bound; it was read and thrown away up to its newline.
    TooLong,
    /// The peer closed the connection (a partial last line is dropped).
    Eof,
    /// The deadline passed before the line was complete.
    TimedOut,
}

pub(crate) struct LineReader {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    max: usize,
}

impl LineReader {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            buf: vec![0; 8 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
            max,
        }
    }

    /// Reads up to the next newline. Memory stays under `max` plus one buffer, however long
    /// the line; the whole line must arrive before `deadline`, so a client that trickles
    /// bytes cannot hold a session open.
    pub(crate) fn next(&mut self, conn: &mut dyn Conn, deadline: Instant) -> io::Result<Line> {
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            if self.start == self.end {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(Line::TimedOut);
                }
                conn.set_read_timeout(Some(deadline - now))?;
                match conn.read(&mut self.buf) {
                    Ok(0) => return Ok(Line::Eof),
                    Ok(n) => (self.start, self.end) = (0, n),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        return Ok(Line::TimedOut)
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            let chunk = &self.buf[self.start..self.end];
            let newline = chunk.iter().position(|&b| b == b'\n');
            let take = newline.unwrap_or(chunk.len());
            if !too_long {
                if line.len() + take > self.max {
                    too_long = true;
                    line = Vec::new();
                } else {
                    line.extend_from_slice(&chunk[..take]);
                }
            }
            match newline {
                Some(i) => {
                    self.start += i + 1;
                    if too_long {
                        return Ok(Line::TooLong);
                    }
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return Ok(Line::Text(line));
                }
                None => self.start = self.end,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    /// Serves bytes in the chunks given, then EOF.
    struct Chunks(Vec<Vec<u8>>);
    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let mut c = self.0.remove(0);
            let n = c.len().min(buf.len());
            if n < c.len() {
                self.0.insert(0, c.split_off(n));
            }
            buf[..n].copy_from_slice(&c[..n]);
            Ok(n)
        }
    }
    impl Write for Chunks {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Conn for Chunks {
        fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
        fn set_write_timeout(&self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
        fn shutdown_both(&self) {}
        fn shutdown_read(&self) {}
        fn shutdown_write(&self) {}
        fn try_clone_conn(&self) -> io::Result<Box<dyn Conn>> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn peer_closed(&self, _: Duration) -> Option<bool> {
            None
        }
    }

    fn lines(chunks: &[&[u8]], max: usize) -> Vec<Line> {
        let mut c = Chunks(chunks.iter().map(|c| c.to_vec()).collect());
        let mut r = LineReader::new(max);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut out = Vec::new();
        loop {
            let l = r.next(&mut c, deadline).unwrap();
            let eof = l == Line::Eof;
            out.push(l);
            if eof {
                return out;
            }
        }
    }

    #[test]
    fn splits_lines_across_chunks() {
        assert_eq!(
            lines(&[b"ab", b"c\nde\r\n", b"\nf"], 10),
            [
                Line::Text(b"abc".to_vec()),
                Line::Text(b"de".to_vec()),
                Line::Text(vec![]),
                Line::Eof
            ]
        );
    }

    #[test]
    fn long_lines_are_skipped_and_reading_goes_on() {
        let long = vec![b'x'; 50_000];
        assert_eq!(
            lines(&[&long, &long, b"\nok\n", b"12345678901\n"], 10),
            [
                Line::TooLong,
                Line::Text(b"ok".to_vec()),
                Line::TooLong,
                Line::Eof
            ]
        );
        assert_eq!(
            lines(&[b"1234567890\n"], 10),
            [Line::Text(b"1234567890".to_vec()), Line::Eof]
        );
    }
}
