//! Parallel table streams merged into one `data.sql`.
//!
//! The data of the largest tables is dumped by extra `pg_dump --data-only
//! --table=...` processes reading the backup's exported snapshot, while the
//! main stream dumps everything else (`--exclude-table-data` of those
//! tables: what it selects — sequences, large objects, extension
//! configuration tables — stays pg_dump's own choice). This module runs the
//! streams side by side and writes one plain SQL stream that stock `psql`
//! loads:
//!
//! * it switches from one stream to another only at the end of a line, after
//!   a batch of [`BATCH`] bytes (or when the current stream has nothing
//!   ready and another has); a stream left inside a COPY block gets `\.`
//!   and its `COPY ... FROM stdin;` line is written again when it resumes,
//!   so a large table's rows may come in several COPY blocks (the table
//!   checksums add up: see tap.rs);
//! * the extra streams' `setval` calls (the main stream has every sequence)
//!   and their `\restrict`/`\unrestrict` lines are left out; the main
//!   stream's `\restrict` comes first (nothing switches before its first
//!   COPY block) and its `\unrestrict` is held back to the very end;
//! * each stream must end with pg_dump's completion marker.
//!
//! Memory: each stream holds at most [`QUEUE`] read chunks plus one
//! statement line (COPY data passes through without being buffered).

use std::collections::VecDeque;
use std::io;
use std::sync::{Condvar, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

use super::dump::{ToolRun, stream};
use super::tap::{DUMP_COMPLETE_MARKER, LINE_CAP, tail_is_complete};
use crate::engine::error::{Error, ErrorKind, Result};

/// Bytes written from one stream before the writer looks at the others.
pub const BATCH: u64 = 4 << 20;
/// Read chunks a stream may have waiting.
const QUEUE: usize = 4;
/// Raw bytes of each stream's end kept for the completion check.
const TAIL: usize = 1024;

#[derive(Default)]
struct FeedState {
    queues: Vec<VecDeque<Vec<u8>>>,
    /// The stream's reader has finished (`Some(true)` if it failed).
    ended: Vec<Option<bool>>,
    aborted: bool,
}

/// The streams' read chunks, handed from reader threads to the writer.
struct Feeds {
    state: Mutex<FeedState>,
    readable: Condvar,
    writable: Condvar,
}

/// What the writer gets next.
enum Pick {
    Chunk(Vec<u8>),
    /// The current stream has ended.
    Ended,
    /// Another stream has something.
    Switch(usize),
}

/// Why the writer stopped early.
enum Stop {
    Sink(io::Error),
    /// A reader failed (its own error is the one to report).
    Failed,
    Incomplete(usize),
}

impl Feeds {
    fn new(n: usize) -> Self {
        Feeds {
            state: Mutex::new(FeedState {
                queues: (0..n).map(|_| VecDeque::new()).collect(),
                ended: vec![None; n],
                aborted: false,
            }),
            readable: Condvar::new(),
            writable: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, i: usize, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        while s.queues[i].len() >= QUEUE && !s.aborted {
            s = self.writable.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.aborted {
            return Err(io::Error::other("the merged stream stopped"));
        }
        s.queues[i].push_back(bytes.to_vec());
        drop(s);
        self.readable.notify_one();
        Ok(())
    }

    fn end(&self, i: usize, failed: bool) {
        self.lock().ended[i] = Some(failed);
        self.readable.notify_one();
    }

    fn abort(&self) {
        self.lock().aborted = true;
        self.writable.notify_all();
    }

    /// Waits for the next chunk of stream `cur`, its end, or — when
    /// `may_leave` — any other live stream with something to read.
    fn next(&self, cur: usize, may_leave: bool, gone: &[bool]) -> std::result::Result<Pick, Stop> {
        let mut s = self.lock();
        loop {
            if s.ended.contains(&Some(true)) {
                return Err(Stop::Failed);
            }
            if !gone[cur] {
                if let Some(c) = s.queues[cur].pop_front() {
                    drop(s);
                    self.writable.notify_all();
                    return Ok(Pick::Chunk(c));
                }
                if s.ended[cur].is_some() {
                    return Ok(Pick::Ended);
                }
            }
            if may_leave {
                let n = s.queues.len();
                let other = (1..n)
                    .map(|k| (cur + k) % n)
                    .find(|&j| !gone[j] && (!s.queues[j].is_empty() || s.ended[j].is_some()));
                if let Some(j) = other {
                    return Ok(Pick::Switch(j));
                }
            }
            s = self.readable.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Another live stream with a chunk waiting, if any.
    fn other_ready(&self, cur: usize, gone: &[bool]) -> Option<usize> {
        let s = self.lock();
        let n = s.queues.len();
        (1..n)
            .map(|k| (cur + k) % n)
            .find(|&j| !gone[j] && !s.queues[j].is_empty())
    }
}

/// One stream's place in the merge.
struct Lane {
    /// An extra stream (its setval and restrict lines are dropped).
    extra: bool,
    chunk: Vec<u8>,
    pos: usize,
    at_line_start: bool,
    in_copy: bool,
    /// The `COPY ... FROM stdin;` line of the block in progress, with `\n`.
    header: Vec<u8>,
    /// The output's copy of the block was closed while this stream moved on.
    suspended: bool,
    /// The statement line being read (outside COPY data).
    line: Vec<u8>,
    /// The statement line outgrew [`LINE_CAP`]: its rest passes through.
    long_line: bool,
    /// Length and first bytes of the COPY data line being read.
    data_len: usize,
    data_head: [u8; 2],
    /// The main stream has reached its first COPY block (or its end).
    prologue_done: bool,
    /// Bytes written since the writer came to this stream.
    batch: u64,
    tail: Vec<u8>,
}

impl Lane {
    fn new(extra: bool) -> Self {
        Lane {
            extra,
            chunk: Vec::new(),
            pos: 0,
            at_line_start: true,
            in_copy: false,
            header: Vec::new(),
            suspended: false,
            line: Vec::new(),
            long_line: false,
            data_len: 0,
            data_head: [0; 2],
            prologue_done: extra,
            batch: 0,
            tail: Vec::new(),
        }
    }

    fn keep_tail(&mut self, bytes: &[u8]) {
        let take = bytes.len().min(TAIL);
        self.tail.extend_from_slice(&bytes[bytes.len() - take..]);
        if self.tail.len() > TAIL {
            let cut = self.tail.len() - TAIL;
            self.tail.drain(..cut);
        }
    }

    fn may_leave(&self) -> bool {
        self.at_line_start && self.prologue_done
    }

    /// Writes this stream's bytes until its chunk is used up or, at a line
    /// end after a full batch, `leave()` says another stream is ready
    /// (returns true then).
    fn consume(
        &mut self,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
        held: &mut Vec<Vec<u8>>,
        leave: &mut dyn FnMut() -> bool,
    ) -> io::Result<bool> {
        let chunk = std::mem::take(&mut self.chunk);
        let result = self.consume_chunk(&chunk, sink, held, leave);
        self.chunk = chunk;
        result
    }

    fn consume_chunk(
        &mut self,
        chunk: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
        held: &mut Vec<Vec<u8>>,
        leave: &mut dyn FnMut() -> bool,
    ) -> io::Result<bool> {
        // Bytes from `run` on are written verbatim when flushed.
        let mut run = self.pos;
        while self.pos < chunk.len() {
            let rest = &chunk[self.pos..];
            let nl = memchr::memchr(b'\n', rest);
            let seg = &rest[..nl.unwrap_or(rest.len())];
            if self.in_copy || self.long_line {
                if self.in_copy {
                    for (k, &b) in seg
                        .iter()
                        .take(2usize.saturating_sub(self.data_len))
                        .enumerate()
                    {
                        self.data_head[self.data_len + k] = b;
                    }
                    self.data_len += seg.len();
                }
                let Some(i) = nl else {
                    self.pos = chunk.len();
                    self.at_line_start = false;
                    break;
                };
                self.pos += i + 1;
                self.batch += i as u64 + 1;
                if self.in_copy && self.data_len == 2 && self.data_head == *b"\\." {
                    self.in_copy = false;
                }
                self.data_len = 0;
                self.long_line = false;
            } else {
                sink(&chunk[run..self.pos])?;
                if self.line.len() + seg.len() > LINE_CAP {
                    // No statement the merge cares about is this long.
                    sink(&self.line)?;
                    self.line.clear();
                    self.long_line = true;
                    run = self.pos;
                    continue;
                }
                self.line.extend_from_slice(seg);
                let Some(i) = nl else {
                    self.pos = chunk.len();
                    self.at_line_start = false;
                    run = self.pos;
                    break;
                };
                self.pos += i + 1;
                run = self.pos;
                self.statement(sink, held)?;
            }
            self.at_line_start = true;
            if self.batch >= BATCH && self.may_leave() {
                if leave() {
                    sink(&chunk[run..self.pos])?;
                    return Ok(true);
                }
                self.batch = 0;
            }
        }
        sink(&chunk[run..self.pos])?;
        Ok(false)
    }

    /// A whole statement line (in `self.line`, without `\n`).
    fn statement(
        &mut self,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
        held: &mut Vec<Vec<u8>>,
    ) -> io::Result<()> {
        let mut line = std::mem::take(&mut self.line);
        line.push(b'\n');
        let text = super::tap::trim_end(&line);
        let meta = text.starts_with(b"\\restrict") || text.starts_with(b"\\unrestrict");
        if text.starts_with(b"COPY ") && text.ends_with(b"FROM stdin;") {
            self.in_copy = true;
            self.header = line.clone();
            self.data_len = 0;
            self.prologue_done = true;
        }
        if self.extra && (meta || text.starts_with(b"SELECT pg_catalog.setval(")) {
            // The main stream has it.
        } else if !self.extra && text.starts_with(b"\\unrestrict") {
            held.push(line.clone());
        } else {
            sink(&line)?;
        }
        self.batch += line.len() as u64;
        line.clear();
        self.line = line;
        Ok(())
    }

    /// The stream ended: a last line without `\n` is written as it is.
    fn finish(&mut self, sink: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        self.prologue_done = true;
        self.at_line_start = true;
        if !self.line.is_empty() {
            sink(&self.line)?;
            self.line.clear();
        }
        Ok(())
    }

    /// The writer moves on while this stream is mid-block: close it.
    fn leave(&mut self, sink: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        if self.in_copy {
            sink(b"\\.\n")?;
            self.suspended = true;
        }
        Ok(())
    }

    /// The writer comes back: reopen the block it closed.
    fn enter(&mut self, sink: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        if self.in_copy && self.suspended {
            sink(&self.header)?;
            self.suspended = false;
        }
        self.batch = 0;
        Ok(())
    }
}

fn write_merged(
    feeds: &Feeds,
    n: usize,
    sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> std::result::Result<(), Stop> {
    let mut lanes: Vec<Lane> = (0..n).map(|i| Lane::new(i > 0)).collect();
    let mut gone = vec![false; n];
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut cur = 0;
    while gone.iter().any(|g| !g) {
        if gone[cur] || lanes[cur].pos == lanes[cur].chunk.len() {
            let may_leave = gone[cur] || lanes[cur].may_leave();
            match feeds.next(cur, may_leave, &gone)? {
                Pick::Chunk(c) => {
                    let lane = &mut lanes[cur];
                    lane.keep_tail(&c);
                    lane.chunk = c;
                    lane.pos = 0;
                }
                Pick::Ended => {
                    let lane = &mut lanes[cur];
                    lane.finish(sink).map_err(Stop::Sink)?;
                    if !tail_is_complete(&lane.tail, DUMP_COMPLETE_MARKER) {
                        return Err(Stop::Incomplete(cur));
                    }
                    gone[cur] = true;
                }
                Pick::Switch(j) => {
                    if !gone[cur] {
                        lanes[cur].leave(sink).map_err(Stop::Sink)?;
                    }
                    lanes[j].enter(sink).map_err(Stop::Sink)?;
                    cur = j;
                }
            }
            continue;
        }
        let left = lanes[cur]
            .consume(sink, &mut held, &mut || {
                feeds.other_ready(cur, &gone).is_some()
            })
            .map_err(Stop::Sink)?;
        if left && let Some(j) = feeds.other_ready(cur, &gone) {
            lanes[cur].leave(sink).map_err(Stop::Sink)?;
            lanes[j].enter(sink).map_err(Stop::Sink)?;
            cur = j;
        }
    }
    for line in held {
        sink(&line).map_err(Stop::Sink)?;
    }
    Ok(())
}

struct StopReaders<'a> {
    feeds: &'a Feeds,
    group: &'a CancellationToken,
    armed: bool,
}

impl Drop for StopReaders<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.group.cancel();
            self.feeds.abort();
        }
    }
}

/// Runs `runs` (the main stream first) side by side and hands their merged
/// output to `sink`; stops them all when one fails, the sink fails or
/// `cancel` fires.
pub(super) fn merge_streams(
    runs: &[ToolRun<'_>],
    cancel: &CancellationToken,
    sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> Result<()> {
    let group = cancel.child_token();
    let feeds = Feeds::new(runs.len());
    let (written, results) = std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .enumerate()
            .map(|(i, run)| {
                let (feeds, group) = (&feeds, &group);
                scope.spawn(move || {
                    let r = stream(run, group, &mut |bytes| feeds.push(i, bytes));
                    feeds.end(i, r.is_err());
                    r
                })
            })
            .collect();
        // Stops the readers unless the writer finished: also when it panics
        // (a reader blocked on a full queue would wait forever).
        let mut guard = StopReaders {
            feeds: &feeds,
            group: &group,
            armed: true,
        };
        let written = write_merged(&feeds, runs.len(), sink);
        guard.armed = written.is_err();
        drop(guard);
        let results: Vec<Result<()>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::internal("a dump stream's thread panicked")))
            })
            .collect();
        (written, results)
    });
    if cancel.is_cancelled() {
        return Err(Error::cancelled());
    }
    for r in &results {
        if let Err(e) = r
            && e.kind != ErrorKind::Cancelled
        {
            return Err(e.clone());
        }
    }
    match written {
        Ok(()) => Ok(()),
        Err(Stop::Sink(e)) => {
            let err = Error::new(
                ErrorKind::Io,
                format!("writing the merged output of pg_dump failed: {e}"),
            );
            Err(if e.kind() == io::ErrorKind::StorageFull {
                err.with_hint("free some disk space and try again")
            } else {
                err
            })
        }
        Err(Stop::Incomplete(i)) => Err(Error::corrupt(format!(
            "pg_dump's data stream {} ended without its completion marker",
            i + 1
        ))),
        Err(Stop::Failed) => Err(Error::internal("a dump stream failed without an error")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::backup::tap::{DataTap, RowHash};

    const MARKER: &str = "\n--\n-- PostgreSQL database dump complete\n--\n\n";

    fn dump(restrict: Option<&str>, body: &str) -> String {
        let mut s = String::new();
        if let Some(k) = restrict {
            s.push_str(&format!("\\restrict {k}\n\n"));
        }
        s.push_str("--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n\n");
        s.push_str(body);
        s.push_str(MARKER);
        if let Some(k) = restrict {
            s.push_str(&format!("\\unrestrict {k}\n\n"));
        }
        s
    }

    fn copy(table: &str, rows: std::ops::Range<u32>, width: usize) -> String {
        let mut s = format!("COPY \"public\".\"{table}\" (\"id\", \"v\") FROM stdin;\n");
        for i in rows {
            s.push_str(&format!("{i}\t{}\n", "x".repeat(width)));
        }
        s.push_str("\\.\n\n");
        s
    }

    /// Feeds the streams in the given chunk sizes through the writer
    /// (reader threads stand in for pg_dump).
    fn merge(streams: &[String], chunk: usize) -> std::result::Result<Vec<u8>, String> {
        let feeds = Feeds::new(streams.len());
        let mut out = Vec::new();
        let written = std::thread::scope(|scope| {
            for (i, s) in streams.iter().enumerate() {
                let feeds = &feeds;
                scope.spawn(move || {
                    for part in s.as_bytes().chunks(chunk) {
                        if feeds.push(i, part).is_err() {
                            break;
                        }
                    }
                    feeds.end(i, false);
                });
            }
            let r = write_merged(&feeds, streams.len(), &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            });
            if r.is_err() {
                feeds.abort();
            }
            r
        });
        match written {
            Ok(()) => Ok(out),
            Err(Stop::Incomplete(i)) => Err(format!("incomplete {i}")),
            Err(Stop::Sink(e)) => Err(e.to_string()),
            Err(Stop::Failed) => Err("failed".into()),
        }
    }

    fn tap(bytes: &[u8]) -> crate::engine::backup::tap::TapReport {
        let mut t = DataTap::new(RowHash::Xxh3);
        t.observe(bytes);
        t.finish()
    }

    #[test]
    fn merged_streams_hold_every_row_once_in_whole_lines() {
        let setval = "SELECT pg_catalog.setval('\"public\".\"big_id_seq\"', 9000, true);\n";
        let main = dump(
            Some("AAA"),
            &format!(
                "{}{}{setval}",
                copy("small", 0..50, 10),
                copy("other", 0..3, 5)
            ),
        );
        let extra1 = dump(
            Some("BBB"),
            &format!("{}{setval}", copy("big", 0..9000, 700)),
        );
        let extra2 = dump(Some("CCC"), &copy("huge", 0..12000, 900));
        let streams = [main.clone(), extra1.clone(), extra2.clone()];
        // The same rows as one stream after another (the single-stream dump).
        let want = {
            let mut t = tap(format!("{main}{extra1}{extra2}").as_bytes());
            t.sequences.truncate(1);
            t
        };
        for chunk in [61usize, 4096, 256 * 1024] {
            let out = merge(&streams, chunk).unwrap();
            let text = String::from_utf8(out.clone()).unwrap();
            let got = tap(&out);
            let mut got_tables = got.tables.clone();
            got_tables.sort_by(|a, b| a.name.cmp(&b.name));
            let mut want_tables = want.tables.clone();
            want_tables.sort_by(|a, b| a.name.cmp(&b.name));
            assert_eq!(got_tables, want_tables, "chunk {chunk}");
            assert_eq!(
                got.sequences, want.sequences,
                "one setval, from the main stream"
            );
            assert!(got.complete);
            // Whether batches interleave depends on which stream has bytes
            // ready at a batch end (timing, not asserted); however they
            // fell, every block is whole — the tap above read each table's
            // rows back exactly.
            // The main stream's restrict pair frames everything; the extra
            // streams' are gone.
            let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
            assert_eq!(lines.first(), Some(&"\\restrict AAA"));
            assert_eq!(lines.last(), Some(&"\\unrestrict AAA"));
            assert!(!text.contains("BBB") && !text.contains("CCC"));
            // Every line is a whole line of one of the streams.
            let known: std::collections::HashSet<&str> =
                streams.iter().flat_map(|s| s.lines()).collect();
            for l in text.lines() {
                assert!(
                    known.contains(l) || l == "\\.",
                    "a line no stream wrote: {l:.40}"
                );
            }
        }
    }

    #[test]
    fn a_stream_without_its_completion_marker_fails_the_merge() {
        let main = dump(None, &copy("small", 0..5, 10));
        let cut = dump(None, &copy("big", 0..5000, 100));
        let cut = cut[..cut.len() - MARKER.len() / 2].to_owned();
        assert_eq!(merge(&[main, cut], 4096).unwrap_err(), "incomplete 1");
    }
}
