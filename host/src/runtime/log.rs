//! One run's log: the guest's `wasi:logging` records and its captured stdout/stderr.
//!
//! Everything here is guest-controlled text going into the host's log, so three rules hold for
//! every record: control characters are escaped (a guest cannot end a record early and forge a
//! host line, or drive the operator's terminal); one record is at most [`RECORD_LIMIT`] bytes
//! (the cut is said, with its size); and a run writes at most `max-log-mb` in all, after which
//! its records are dropped, said once when it happens and counted at the end.

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use crate::bindings::logging::Level;

/// Most bytes of one record's message as written; the rest is cut.
pub const RECORD_LIMIT: usize = 64 << 10;

/// How much of the end of stderr is kept to explain a trap (a panic message, an allocation
/// failure): those are the last thing a dying guest prints.
const STDERR_TAIL: usize = 16 << 10;

/// Bytes the guest may hand the stdout/stderr pipe per write permit.
pub const PIPE_PERMIT: usize = 64 << 10;

/// Where a captured record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The run's log, shared by the logging import and the two capture pipes.
#[derive(Clone)]
pub struct RunLog(Arc<Mutex<Inner>>);

struct Inner {
    flow: String,
    run_id: String,
    limit: u64,
    written: u64,
    dropped_bytes: u64,
    dropped_records: u64,
    /// A line of stdout (0) or stderr (1) still waiting for its newline.
    partial: [Partial; 2],
    stderr_tail: Vec<u8>,
}

#[derive(Default)]
struct Partial {
    bytes: Vec<u8>,
    /// Bytes of this line past [`RECORD_LIMIT`] that were not kept.
    cut: usize,
}

impl RunLog {
    pub fn new(flow: &str, run_id: &str, limit: u64) -> RunLog {
        RunLog(Arc::new(Mutex::new(Inner {
            flow: flow.to_owned(),
            run_id: run_id.to_owned(),
            limit,
            written: 0,
            dropped_bytes: 0,
            dropped_records: 0,
            partial: Default::default(),
            stderr_tail: Vec::new(),
        })))
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves counters at worst slightly off: keep logging.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A `wasi:logging` record from the guest.
    pub fn record(&self, level: Level, context: &str, message: &str) {
        if !level_enabled(level) {
            return;
        }
        let (message, cut) = escape(message, RECORD_LIMIT);
        let (context, _) = escape(context, 256);
        let mut inner = self.inner();
        if !inner.admit(context.len() + message.len()) {
            return;
        }
        let message = with_cut_marker(message, cut);
        let (flow, run) = (&inner.flow, &inner.run_id);
        match level {
            Level::Trace => {
                tracing::trace!(target: "flow", flow = %flow, run = %run, context = %context, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "flow", flow = %flow, run = %run, context = %context, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "flow", flow = %flow, run = %run, context = %context, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "flow", flow = %flow, run = %run, context = %context, "{message}")
            }
            Level::Error | Level::Critical => {
                tracing::error!(target: "flow", flow = %flow, run = %run, context = %context, "{message}")
            }
        }
    }

    /// Bytes the guest wrote to stdout or stderr: each complete line becomes one record.
    fn capture(&self, stream: Stream, mut bytes: &[u8]) {
        let mut inner = self.inner();
        if stream == Stream::Stderr {
            let tail = &mut inner.stderr_tail;
            tail.extend_from_slice(&bytes[bytes.len().saturating_sub(STDERR_TAIL)..]);
            if tail.len() > 2 * STDERR_TAIL {
                tail.drain(..tail.len() - STDERR_TAIL);
            }
        }
        while !bytes.is_empty() {
            let (line, rest) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
                None => (bytes, None),
            };
            let partial = &mut inner.partial[stream as usize];
            let room = RECORD_LIMIT.saturating_sub(partial.bytes.len());
            partial
                .bytes
                .extend_from_slice(&line[..line.len().min(room)]);
            partial.cut += line.len().saturating_sub(room);
            match rest {
                Some(rest) => {
                    inner.end_line(stream);
                    bytes = rest;
                }
                None => break,
            }
        }
    }

    /// The end of stderr, for explaining a trap.
    pub fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&self.inner().stderr_tail).into_owned()
    }

    /// Writes lines the guest left without a newline, and says what the log limit dropped.
    pub fn finish(&self) {
        let mut inner = self.inner();
        inner.end_line(Stream::Stdout);
        inner.end_line(Stream::Stderr);
        if inner.dropped_records > 0 {
            let (flow, run) = (&inner.flow, &inner.run_id);
            tracing::warn!(
                flow = %flow,
                run = %run,
                dropped_bytes = inner.dropped_bytes,
                dropped_records = inner.dropped_records,
                "the log limit of {} (manifest [limits] max-log-mb) dropped {} bytes in {} records of this run",
                mib(inner.limit),
                inner.dropped_bytes,
                inner.dropped_records,
            );
        }
    }

    /// A pipe for the guest's stdout or stderr that writes into this log.
    pub fn pipe(&self, stream: Stream) -> wasmtime_wasi::cli::AsyncStdoutStream {
        wasmtime_wasi::cli::AsyncStdoutStream::new(
            PIPE_PERMIT,
            Capture {
                log: self.clone(),
                stream,
            },
        )
    }
}

impl Inner {
    /// Counts a record of `bytes` against the run's limit; false if it must be dropped.
    fn admit(&mut self, bytes: usize) -> bool {
        let bytes = bytes as u64;
        if self.dropped_records == 0 && self.written + bytes <= self.limit {
            self.written += bytes;
            return true;
        }
        if self.dropped_records == 0 {
            tracing::warn!(
                flow = %self.flow,
                run = %self.run_id,
                "the flow's log reached its limit of {} (manifest [limits] max-log-mb); its further \
                 records are dropped",
                mib(self.limit)
            );
        }
        self.dropped_records += 1;
        self.dropped_bytes += bytes;
        false
    }

    fn end_line(&mut self, stream: Stream) {
        let partial = std::mem::take(&mut self.partial[stream as usize]);
        let text = String::from_utf8_lossy(&partial.bytes);
        if text.trim().is_empty() {
            return;
        }
        let (escaped, cut) = escape(&text, RECORD_LIMIT);
        if !self.admit(escaped.len()) {
            return;
        }
        let message = with_cut_marker(escaped, cut + partial.cut);
        tracing::info!(target: "flow", flow = %self.flow, run = %self.run_id, stream = stream.as_str(), "{message}");
    }
}

/// The guest's stdout or stderr: takes every byte at once, never fails, never blocks.
struct Capture {
    log: RunLog,
    stream: Stream,
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.log.capture(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// `text` with every control character escaped (`\n`, `\r`, `\t`, `\x1b`, `\u{2028}`...), cut to
/// at most `limit` bytes; also returns how many bytes of `text` were cut. Reads no further than
/// it writes, so a 100 MB message costs 64 KiB of work.
pub fn escape(text: &str, limit: usize) -> (String, usize) {
    let mut out = String::with_capacity(text.len().min(limit));
    for (at, ch) in text.char_indices() {
        let before = out.len();
        match ch {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // C0, DEL and C1 controls: ESC starts terminal sequences, U+009B is a one-byte CSI.
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            // Line and paragraph separators end a line in some viewers.
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{{{:x}}}", ch as u32);
            }
            c => out.push(c),
        }
        if out.len() > limit {
            out.truncate(before);
            return (out, text.len() - at);
        }
    }
    (out, 0)
}

fn with_cut_marker(mut message: String, cut: usize) -> String {
    if cut > 0 {
        let _ = write!(
            message,
            " ... [{cut} more bytes cut: one log record is at most {} KiB]",
            RECORD_LIMIT >> 10
        );
    }
    message
}

fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

fn level_enabled(level: Level) -> bool {
    match level {
        Level::Trace => tracing::enabled!(target: "flow", tracing::Level::TRACE),
        Level::Debug => tracing::enabled!(target: "flow", tracing::Level::DEBUG),
        Level::Info => tracing::enabled!(target: "flow", tracing::Level::INFO),
        Level::Warn => tracing::enabled!(target: "flow", tracing::Level::WARN),
        Level::Error | Level::Critical => tracing::enabled!(target: "flow", tracing::Level::ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let (text, cut) = escape("x\nINFO run finished\r\x1b[31m\u{9b}\u{2028}\tend", 1000);
        assert_eq!(
            text,
            "x\\nINFO run finished\\r\\x1b[31m\\x9b\\u{2028}\\tend"
        );
        assert_eq!(cut, 0);
    }

    #[test]
    fn escaping_stops_at_the_limit_and_counts_the_cut() {
        let long = "é".repeat(100_000);
        let (text, cut) = escape(&long, RECORD_LIMIT);
        assert!(text.len() <= RECORD_LIMIT);
        assert_eq!(text.len() + cut, long.len());
        // An escape is never split.
        let (text, cut) = escape("ab\n", 3);
        assert_eq!((text.as_str(), cut), ("ab", 1));
    }
}
