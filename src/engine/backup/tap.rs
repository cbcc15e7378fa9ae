//! A pass-through observer of a plain-SQL `pg_dump --data-only
//! --quote-all-identifiers` stream (`data.sql`).
//!
//! [`DataTap`] sees every byte as it streams past (chunk boundaries anywhere)
//! and, with bounded memory, records per `COPY ... FROM stdin;` block the
//! number of rows and an order-independent checksum of them, the
//! `SELECT pg_catalog.setval(...)` calls, the `REFRESH MATERIALIZED VIEW`
//! statements, and whether the stream ends with pg_dump's completion marker.
//!
//! # The multiset checksum
//!
//! A table's checksum is computed over its COPY data lines, each taken as the
//! exact bytes of the line **without** its trailing `\n` (text-format COPY
//! escapes newlines and carriage returns inside values, so a row is exactly
//! one line; an empty line is a valid row, e.g. of a table with no columns):
//!
//! 1. `d = H(line)`, where `H` is the manifest's `row_checksum` ([`RowHash`]):
//!    XXH3-128 (`xxh3-128`, 16 bytes: the 128-bit value written little-endian)
//!    since this format was introduced, SHA-256 (`sha256`, 32 bytes) for
//!    backups whose manifest names none;
//! 2. split `d` into 8-byte lanes (two or four), each read as a
//!    **little-endian** `u64`;
//! 3. add the lanes lane-wise, with wrapping (mod 2^64) addition, into an
//!    accumulator that starts at zero.
//!
//! The checksum is the lower-case hex of the accumulator lanes, in order, each
//! written as a little-endian `u64` (32 hex digits for XXH3-128, 64 for
//! SHA-256; an empty table gives all zeros). Addition is commutative, so the result does
//! not depend on row order: a fresh `COPY "s"."t" (cols...) TO STDOUT` of the
//! restored table — same column list, same text format and session settings as
//! pg_dump's — yields the same checksum however the rows come back. Duplicate
//! rows count as many times as they occur. [`multiset_checksum`] and
//! [`MultisetHasher`] compute the same value for other line sources.
//!
//! The row hash only has to tell a restored table from its backup: the
//! files' integrity rests on their SHA-256 digests and, when encrypted, on
//! AES-GCM. XXH3 hashes rows about ten times faster than SHA-256 does here
//! (with SHA extensions), which is why new backups use it.
//!
//! Memory: at most one line prefix of [`LINE_CAP`] bytes is buffered; a longer
//! COPY line is hashed incrementally without being kept, a longer line outside
//! COPY data is skipped (pg_dump writes no such statement the tap cares about).

use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

use crate::engine::crypto::hex;

/// The per-row hash of the table checksums (the manifest's `row_checksum`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RowHash {
    /// SHA-256, four lanes: backups made before `row_checksum` existed.
    #[default]
    #[serde(rename = "sha256")]
    Sha256,
    /// XXH3-128, two lanes: what new backups use.
    #[serde(rename = "xxh3-128")]
    Xxh3,
}

impl RowHash {
    /// What new backups use.
    pub const CURRENT: RowHash = RowHash::Xxh3;

    fn lanes(self) -> usize {
        match self {
            RowHash::Sha256 => 4,
            RowHash::Xxh3 => 2,
        }
    }
}

/// An incremental row hash, for a line too long to buffer.
enum LineHasher {
    Sha256(Sha256),
    Xxh3(Box<Xxh3>),
}

impl LineHasher {
    fn new(alg: RowHash) -> Self {
        match alg {
            RowHash::Sha256 => LineHasher::Sha256(Sha256::new()),
            RowHash::Xxh3 => LineHasher::Xxh3(Box::new(Xxh3::new())),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            LineHasher::Sha256(h) => h.update(bytes),
            LineHasher::Xxh3(h) => h.update(bytes),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            LineHasher::Sha256(h) => h.finalize().to_vec(),
            LineHasher::Xxh3(h) => h.digest128().to_le_bytes().to_vec(),
        }
    }
}

/// pg_dump's completion marker for a single database dump.
pub const DUMP_COMPLETE_MARKER: &str = "-- PostgreSQL database dump complete";
/// pg_dumpall's completion marker.
pub const CLUSTER_DUMP_COMPLETE_MARKER: &str = "-- PostgreSQL database cluster dump complete";

/// The longest line prefix the tap buffers (1 MiB).
pub const LINE_CAP: usize = 1 << 20;

/// Rows and checksum of one `COPY` block.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableStat {
    /// Plain schema name (quotes removed, `""` unescaped).
    pub schema: String,
    /// Plain table name (quotes removed, `""` unescaped).
    pub name: String,
    /// Number of data lines in the block.
    pub rows: u64,
    /// The multiset checksum of the data lines (see the module docs).
    pub checksum: String,
}

/// One `SELECT pg_catalog.setval('<name>', <value>, <is_called>);`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SequenceStat {
    /// The name as written inside setval's literal (with `''` unescaped),
    /// e.g. `"public"."orders_id_seq"`.
    pub name: String,
    pub value: i64,
    pub is_called: bool,
}

/// What the tap saw in a whole stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TapReport {
    /// One entry per `COPY` block, in stream order.
    pub tables: Vec<TableStat>,
    /// One entry per `setval` call, in stream order.
    pub sequences: Vec<SequenceStat>,
    /// Materialized views named by `REFRESH MATERIALIZED VIEW` statements, as
    /// written in the statement (e.g. `"public"."order_totals"`), in stream
    /// order. (`pg_dump --data-only` itself writes none: refreshes belong to
    /// the post-data section.)
    pub refreshed_matviews: Vec<String>,
    /// Whether the stream ended with pg_dump's completion marker (outside any
    /// `COPY` block; trailing blank lines and psql meta-command lines such as
    /// `\unrestrict <key>` are tolerated).
    pub complete: bool,
}

/// Order-independent multiset hash of lines; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultisetHasher {
    alg: RowHash,
    acc: [u64; 4],
    count: u64,
}

impl MultisetHasher {
    pub fn new(alg: RowHash) -> Self {
        MultisetHasher {
            alg,
            acc: [0; 4],
            count: 0,
        }
    }

    /// Adds one line (without its trailing `\n`).
    pub fn add_line(&mut self, line: &[u8]) {
        match self.alg {
            RowHash::Sha256 => self.add_digest(&Sha256::digest(line)),
            RowHash::Xxh3 => self.add_digest(&xxh3_128(line).to_le_bytes()),
        }
    }

    /// Adds a line whose hash was computed elsewhere.
    fn add_digest(&mut self, digest: &[u8]) {
        for (lane, bytes) in self.acc.iter_mut().zip(digest.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(bytes);
            *lane = lane.wrapping_add(u64::from_le_bytes(le));
        }
        self.count += 1;
    }

    /// The checksum: 16 hex digits per lane, lower case.
    pub fn hex(&self) -> String {
        let mut bytes = [0u8; 32];
        for (out, lane) in bytes.chunks_exact_mut(8).zip(self.acc) {
            out.copy_from_slice(&lane.to_le_bytes());
        }
        hex(&bytes[..self.alg.lanes() * 8])
    }

    /// How many lines were added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds the lines another hasher (of the same row hash) saw: the
    /// checksum of several COPY blocks of one table.
    pub fn merge(&mut self, other: &MultisetHasher) {
        debug_assert_eq!(self.alg, other.alg);
        for (lane, add) in self.acc.iter_mut().zip(other.acc) {
            *lane = lane.wrapping_add(add);
        }
        self.count += other.count;
    }
}

/// The multiset checksum of `lines` (each without its trailing `\n`).
pub fn multiset_checksum<'a>(alg: RowHash, lines: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut h = MultisetHasher::new(alg);
    for line in lines {
        h.add_line(line);
    }
    h.hex()
}

/// Whether `tail` — the last bytes of a dump (a few hundred bytes suffice;
/// the whole stream works too) — ends with the completion `marker` block: the
/// last lines that are neither blank nor psql meta-commands (`\unrestrict
/// <key>`) must be `--`, `marker`, `--` (trailing `\r` and blanks ignored).
/// Pass [`DUMP_COMPLETE_MARKER`] for pg_dump output and
/// [`CLUSTER_DUMP_COMPLETE_MARKER`] for pg_dumpall output.
pub fn tail_is_complete(tail: &[u8], marker: &str) -> bool {
    let mut lines = tail
        .split(|&b| b == b'\n')
        .rev()
        .filter(|l| is_significant(l));
    let mut last3 = [&b""[..]; 3];
    for slot in last3.iter_mut().rev() {
        match lines.next() {
            Some(l) => *slot = l,
            None => return false,
        }
    }
    marker_block(&last3, marker)
}

pub(crate) fn trim_end(line: &[u8]) -> &[u8] {
    let n = line
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_whitespace())
        .count();
    &line[..line.len() - n]
}

/// A line that counts for the completion check: not blank and not a psql
/// meta-command (pg_dump 15.14+/17.6+ writes `\unrestrict <key>` after the
/// marker; a stream cut inside that line still holds all the data).
fn is_significant(line: &[u8]) -> bool {
    let t = trim_end(line);
    !t.is_empty() && !t.starts_with(b"\\")
}

fn marker_block(last3: &[&[u8]; 3], marker: &str) -> bool {
    trim_end(last3[0]) == b"--"
        && trim_end(last3[1]) == marker.as_bytes()
        && trim_end(last3[2]) == b"--"
}

struct CopyBlock {
    schema: String,
    name: String,
    hasher: MultisetHasher,
}

/// Streaming observer of a plain-SQL data dump; see the module docs.
pub struct DataTap {
    /// The current line (without `\n`), up to [`LINE_CAP`] bytes.
    buf: Vec<u8>,
    /// The current line exceeded [`LINE_CAP`].
    overflowed: bool,
    /// The row hash of the table checksums.
    alg: RowHash,
    /// Incremental hash of an over-long COPY data line.
    long_line: Option<LineHasher>,
    copy: Option<CopyBlock>,
    /// Per table in order of first appearance (several COPY blocks of one
    /// table add up).
    tables: Vec<CopyBlock>,
    /// Where each (schema, table) is in `tables`.
    table_index: std::collections::HashMap<(String, String), usize>,
    sequences: Vec<SequenceStat>,
    matviews: Vec<String>,
    /// The last three significant lines outside COPY data (truncated).
    tail: [Vec<u8>; 3],
    bytes: u64,
}

/// Tail lines are kept only as long as needed to compare with a marker.
const TAIL_LINE_MAX: usize = 128;

impl DataTap {
    pub fn new(alg: RowHash) -> Self {
        DataTap {
            buf: Vec::new(),
            overflowed: false,
            alg,
            long_line: None,
            copy: None,
            tables: Vec::new(),
            table_index: std::collections::HashMap::new(),
            sequences: Vec::new(),
            matviews: Vec::new(),
            tail: Default::default(),
            bytes: 0,
        }
    }

    /// Observes the next bytes of the stream.
    pub fn observe(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        let mut rest = bytes;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            if self.buf.is_empty() && !self.overflowed && i <= LINE_CAP {
                // The whole line is here: no copy.
                self.line(&rest[..i]);
            } else {
                self.append(&rest[..i]);
                self.end_line();
            }
            rest = &rest[i + 1..];
        }
        self.append(rest);
    }

    /// `schema.table` (plain names) currently being copied, if inside a COPY
    /// block.
    pub fn current_table(&self) -> Option<String> {
        self.copy
            .as_ref()
            .map(|c| format!("{}.{}", c.schema, c.name))
    }

    /// Bytes observed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.bytes
    }

    /// End of stream: a last line without `\n` is processed as a line; an
    /// unterminated COPY block is reported with the rows seen, and makes the
    /// report incomplete.
    pub fn finish(mut self) -> TapReport {
        if !self.buf.is_empty() || self.overflowed {
            self.end_line();
        }
        let truncated = self.copy.is_some();
        if let Some(c) = self.copy.take() {
            self.add_block(c);
        }
        let last3 = [&self.tail[0][..], &self.tail[1][..], &self.tail[2][..]];
        TapReport {
            tables: self.tables.into_iter().map(CopyBlock::stat).collect(),
            sequences: self.sequences,
            refreshed_matviews: self.matviews,
            complete: !truncated && marker_block(&last3, DUMP_COMPLETE_MARKER),
        }
    }

    fn append(&mut self, seg: &[u8]) {
        if self.overflowed {
            if let Some(h) = self.long_line.as_mut() {
                h.update(seg);
            }
        } else if self.buf.len() + seg.len() > LINE_CAP {
            self.overflowed = true;
            if self.copy.is_some() {
                let mut h = LineHasher::new(self.alg);
                h.update(&self.buf);
                h.update(seg);
                self.long_line = Some(h);
            }
            self.buf.clear();
        } else {
            self.buf.extend_from_slice(seg);
        }
    }

    fn end_line(&mut self) {
        let overflowed = std::mem::replace(&mut self.overflowed, false);
        let long_line = self.long_line.take();
        if overflowed {
            match (self.copy.as_mut(), long_line) {
                (Some(copy), Some(h)) => copy.hasher.add_digest(&h.finish()),
                (Some(_), None) => {}
                (None, _) => self.note_tail(b"<long line>"),
            }
            self.buf.clear();
            return;
        }
        let line = std::mem::take(&mut self.buf);
        self.line(&line);
        self.buf = line;
        self.buf.clear();
    }

    /// One whole line (without `\n`) of at most [`LINE_CAP`] bytes.
    fn line(&mut self, line: &[u8]) {
        if let Some(copy) = self.copy.as_mut() {
            if line == b"\\." {
                if let Some(c) = self.copy.take() {
                    self.add_block(c);
                }
                self.note_tail(line);
            } else {
                copy.hasher.add_line(line);
            }
        } else {
            self.statement_line(line);
            self.note_tail(line);
        }
    }

    fn add_block(&mut self, block: CopyBlock) {
        // A table has several blocks in merged parallel streams.
        let key = (block.schema.clone(), block.name.clone());
        match self.table_index.get(&key) {
            Some(&i) => self.tables[i].hasher.merge(&block.hasher),
            None => {
                self.table_index.insert(key, self.tables.len());
                self.tables.push(block);
            }
        }
    }

    fn note_tail(&mut self, line: &[u8]) {
        if !is_significant(line) {
            return;
        }
        self.tail.rotate_left(1);
        let keep = line.len().min(TAIL_LINE_MAX);
        self.tail[2].clear();
        self.tail[2].extend_from_slice(&line[..keep]);
    }

    fn statement_line(&mut self, line: &[u8]) {
        let line = trim_end(line);
        if let Some(rest) = line.strip_prefix(b"COPY ") {
            if let Some(target) = rest.strip_suffix(b"FROM stdin;") {
                let (schema, name) = parse_copy_target(target);
                self.copy = Some(CopyBlock {
                    schema,
                    name,
                    hasher: MultisetHasher::new(self.alg),
                });
            }
        } else if let Some(rest) = line.strip_prefix(b"SELECT pg_catalog.setval(") {
            if let Some(seq) = parse_setval(rest) {
                self.sequences.push(seq);
            }
        } else if let Some(rest) = line.strip_prefix(b"REFRESH MATERIALIZED VIEW ") {
            let rest = rest.strip_prefix(b"CONCURRENTLY ").unwrap_or(rest);
            if let Some(name) = rest.strip_suffix(b";") {
                self.matviews
                    .push(String::from_utf8_lossy(trim_end(name)).into_owned());
            }
        }
    }
}

impl CopyBlock {
    fn stat(self) -> TableStat {
        TableStat {
            schema: self.schema,
            name: self.name,
            rows: self.hasher.count(),
            checksum: self.hasher.hex(),
        }
    }
}

/// Reads one identifier at the start of `s`: `"..."` with `""` escapes, or a
/// bare word (up to `.`, a blank or `(`). Returns the plain name and the rest.
pub(crate) fn parse_ident(s: &[u8]) -> Option<(String, &[u8])> {
    if let Some(body) = s.strip_prefix(b"\"") {
        let mut name = Vec::new();
        let mut i = 0;
        loop {
            match body.get(i)? {
                b'"' if body.get(i + 1) == Some(&b'"') => {
                    name.push(b'"');
                    i += 2;
                }
                b'"' => {
                    return Some((String::from_utf8_lossy(&name).into_owned(), &body[i + 1..]));
                }
                &b => {
                    name.push(b);
                    i += 1;
                }
            }
        }
    }
    let n = s
        .iter()
        .take_while(|&&b| !matches!(b, b'.' | b' ' | b'\t' | b'('))
        .count();
    (n > 0).then(|| (String::from_utf8_lossy(&s[..n]).into_owned(), &s[n..]))
}

/// `"schema"."table" (cols...) ` → plain (schema, table). An unqualified name
/// gets an empty schema; an unparsable target is reported whole as the name.
pub(crate) fn parse_copy_target(target: &[u8]) -> (String, String) {
    let Some((first, rest)) = parse_ident(target) else {
        return (
            String::new(),
            String::from_utf8_lossy(trim_end(target)).into_owned(),
        );
    };
    if let Some(after_dot) = rest.strip_prefix(b".")
        && let Some((second, _)) = parse_ident(after_dot)
    {
        return (first, second);
    }
    (String::new(), first)
}

/// `'<name>', <value>, <true|false>);` (after `SELECT pg_catalog.setval(`).
fn parse_setval(s: &[u8]) -> Option<SequenceStat> {
    let s = s.strip_prefix(b"E").unwrap_or(s);
    let body = s.strip_prefix(b"'")?;
    let mut name = Vec::new();
    let mut i = 0;
    let rest = loop {
        match body.get(i)? {
            b'\'' if body.get(i + 1) == Some(&b'\'') => {
                name.push(b'\'');
                i += 2;
            }
            b'\'' => break &body[i + 1..],
            &b => {
                name.push(b);
                i += 1;
            }
        }
    };
    let text = std::str::from_utf8(rest).ok()?;
    let text = text.trim().strip_prefix(',')?.strip_suffix(");")?;
    let (value, called) = text.split_once(',')?;
    let value = value.trim().parse().ok()?;
    let is_called = match called.trim() {
        "true" => true,
        "false" => false,
        _ => return None,
    };
    Some(SequenceStat {
        name: String::from_utf8_lossy(&name).into_owned(),
        value,
        is_called,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real output of `pg_dump -h 127.0.0.1 -U postgres --data-only
    /// --quote-all-identifiers` (PostgreSQL 15.20) of a throw-away database:
    /// values with tabs, newlines, carriage returns, backslashes, `\.`, NULLs,
    /// unicode and duplicate rows; an empty table; a table without columns
    /// (its rows are empty lines); a schema and a table whose names hold a
    /// space and a quote; three sequences; a populated and an unpopulated
    /// materialized view (a data-only dump refreshes neither). Note the psql
    /// `\unrestrict` line written *after* the completion marker.
    const DATA_ONLY: &str = r##"--
-- PostgreSQL database dump
--

\restrict DDCYXy1PO4VZLGNBx1tcxdfqd7MempU9CXuJocLSHh2v6GZv3I3843UqQXV7LlK

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Data for Name: odd "name" table; Type: TABLE DATA; Schema: My Schema; Owner: postgres
--

COPY "My Schema"."odd ""name"" table" ("a col", "b""q") FROM stdin;
1	x
2	\\.
3	
\.


--
-- Data for Name: empty_table; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY "public"."empty_table" ("id", "v") FROM stdin;
\.


--
-- Data for Name: nocols; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY "public"."nocols"  FROM stdin;


\.


--
-- Data for Name: orders; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY "public"."orders" ("id", "note", "amount", "created") FROM stdin;
1	tab\there	1.5	2024-01-02
2	new\nline	\N	\N
3	back\\slash	0	2024-02-29
4	unicode: héllo ✓ 日本	-3.25	1999-12-31
5	\N	42	2000-01-01
6	dup	1	2020-01-01
7	dup	1	2020-01-01
8	cr\rhere and \\. dot	7	\N
\.


--
-- Name: counter_seq; Type: SEQUENCE SET; Schema: public; Owner: postgres
--

SELECT pg_catalog.setval('"public"."counter_seq"', 100, true);


--
-- Name: orders_id_seq; Type: SEQUENCE SET; Schema: public; Owner: postgres
--

SELECT pg_catalog.setval('"public"."orders_id_seq"', 8, true);


--
-- Name: unused_seq; Type: SEQUENCE SET; Schema: public; Owner: postgres
--

SELECT pg_catalog.setval('"public"."unused_seq"', 1, false);


--
-- PostgreSQL database dump complete
--

\unrestrict DDCYXy1PO4VZLGNBx1tcxdfqd7MempU9CXuJocLSHh2v6GZv3I3843UqQXV7LlK

"##;

    /// The same database dumped with `--section=data --section=post-data`
    /// (real output): adds the primary key and `REFRESH MATERIALIZED VIEW`.
    const DATA_AND_POST: &str = r##"--
-- PostgreSQL database dump
--

\restrict eXpbi19AbiJTF2XhsmDPp5CJUWialj9NNGGdDeu9qNftnGQPqbhWfU4i5Gz1IAZ

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Data for Name: odd "name" table; Type: TABLE DATA; Schema: My Schema; Owner: postgres
--

COPY "My Schema"."odd ""name"" table" ("a col", "b""q") FROM stdin;
1	x
2	\\.
3	
\.


--
-- Data for Name: empty_table; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY "public"."empty_table" ("id", "v") FROM stdin;
\.


--
-- Data for Name: nocols; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY "public"."nocols"  FROM stdin;


\.


--
-- Data for Name: orders; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY "public"."orders" ("id", "note", "amount", "created") FROM stdin;
1	tab\there	1.5	2024-01-02
2	new\nline	\N	\N
3	back\\slash	0	2024-02-29
4	unicode: héllo ✓ 日本	-3.25	1999-12-31
5	\N	42	2000-01-01
6	dup	1	2020-01-01
7	dup	1	2020-01-01
8	cr\rhere and \\. dot	7	\N
\.


--
-- Name: counter_seq; Type: SEQUENCE SET; Schema: public; Owner: postgres
--

SELECT pg_catalog.setval('"public"."counter_seq"', 100, true);


--
-- Name: orders_id_seq; Type: SEQUENCE SET; Schema: public; Owner: postgres
--

SELECT pg_catalog.setval('"public"."orders_id_seq"', 8, true);


--
-- Name: unused_seq; Type: SEQUENCE SET; Schema: public; Owner: postgres
--

SELECT pg_catalog.setval('"public"."unused_seq"', 1, false);


SET default_tablespace = '';

--
-- Name: orders orders_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY "public"."orders"
    ADD CONSTRAINT "orders_pkey" PRIMARY KEY ("id");


--
-- Name: order_totals; Type: MATERIALIZED VIEW DATA; Schema: public; Owner: postgres
--

REFRESH MATERIALIZED VIEW "public"."order_totals";


--
-- PostgreSQL database dump complete
--

\unrestrict eXpbi19AbiJTF2XhsmDPp5CJUWialj9NNGGdDeu9qNftnGQPqbhWfU4i5Gz1IAZ

"##;

    /// Real output of `COPY (SELECT * FROM public.orders ORDER BY id DESC) TO
    /// STDOUT` on the same database.
    const ORDERS_COPY_DESC: &str = r##"8	cr\rhere and \\. dot	7	\N
7	dup	1	2020-01-01
6	dup	1	2020-01-01
5	\N	42	2000-01-01
4	unicode: héllo ✓ 日本	-3.25	1999-12-31
3	back\\slash	0	2024-02-29
2	new\nline	\N	\N
1	tab\there	1.5	2024-01-02
"##;

    fn tap_chunked(input: &[u8], sizes: &mut dyn FnMut() -> usize) -> TapReport {
        tap_chunked_with(RowHash::Sha256, input, sizes)
    }

    fn tap_chunked_with(alg: RowHash, input: &[u8], sizes: &mut dyn FnMut() -> usize) -> TapReport {
        let mut tap = DataTap::new(alg);
        let mut rest = input;
        while !rest.is_empty() {
            let n = sizes().clamp(1, rest.len());
            let (a, b) = rest.split_at(n);
            tap.observe(a);
            assert!(tap.buf.len() <= LINE_CAP);
            rest = b;
        }
        tap.finish()
    }

    fn tap_all(input: &[u8]) -> TapReport {
        let mut tap = DataTap::new(RowHash::Sha256);
        tap.observe(input);
        tap.finish()
    }

    fn rng(mut seed: u64) -> impl FnMut() -> usize {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 251) as usize + 1
        }
    }

    fn stat(schema: &str, name: &str, rows: u64, checksum: &str) -> TableStat {
        TableStat {
            schema: schema.into(),
            name: name.into(),
            rows,
            checksum: checksum.into(),
        }
    }

    /// Checksums computed independently (Python's hashlib) from the fixture.
    fn expected_tables() -> Vec<TableStat> {
        vec![
            stat(
                "My Schema",
                "odd \"name\" table",
                3,
                "95392cad8fda0ab2a63564fda96791bee27b18e3b3dbea7a5b8198578a983333",
            ),
            stat("public", "empty_table", 0, &"0".repeat(64)),
            stat(
                "public",
                "nocols",
                2,
                "c661898530f9392834f7e99133df72494e5c83c8c9362799482b3337f0a470ab",
            ),
            stat(
                "public",
                "orders",
                8,
                "7615810536fbbe1a64f7528128989e2a062430213b2b095ef1bf1a5844aa2c1b",
            ),
        ]
    }

    fn expected_sequences() -> Vec<SequenceStat> {
        [
            ("\"public\".\"counter_seq\"", 100, true),
            ("\"public\".\"orders_id_seq\"", 8, true),
            ("\"public\".\"unused_seq\"", 1, false),
        ]
        .map(|(name, value, is_called)| SequenceStat {
            name: name.into(),
            value,
            is_called,
        })
        .to_vec()
    }

    #[test]
    fn reports_real_data_dump() {
        let report = tap_all(DATA_ONLY.as_bytes());
        assert_eq!(report.tables, expected_tables());
        assert_eq!(report.sequences, expected_sequences());
        assert!(report.refreshed_matviews.is_empty());
        assert!(report.complete);
    }

    #[test]
    fn reports_refresh_in_post_data_dump() {
        let report = tap_all(DATA_AND_POST.as_bytes());
        assert_eq!(report.tables, expected_tables());
        assert_eq!(report.sequences, expected_sequences());
        assert_eq!(report.refreshed_matviews, ["\"public\".\"order_totals\""]);
        assert!(report.complete);
    }

    #[test]
    fn checksum_matches_copy_to_stdout_in_any_order() {
        // The `COPY (... ORDER BY id DESC) TO STDOUT` output of the same table.
        let lines: Vec<&[u8]> = ORDERS_COPY_DESC.lines().map(str::as_bytes).collect();
        assert_eq!(lines.len(), 8);
        assert_eq!(
            multiset_checksum(RowHash::Sha256, lines.iter().copied()),
            expected_tables()[3].checksum
        );
        let mut h = MultisetHasher::new(RowHash::Sha256);
        for l in lines.iter().rev() {
            h.add_line(l);
        }
        assert_eq!(h.count(), 8);
        assert_eq!(h.hex(), expected_tables()[3].checksum);
        // A changed or missing row changes the checksum.
        assert_ne!(
            multiset_checksum(RowHash::Sha256, lines[1..].iter().copied()),
            h.hex()
        );
        let mut altered = lines.clone();
        altered[0] = b"8\tcr\\rhere and \\\\. dot\t7\t0";
        assert_ne!(
            multiset_checksum(RowHash::Sha256, altered.iter().copied()),
            h.hex()
        );
    }

    /// Reorders the data lines of every COPY block (reverse, then rotate).
    fn shuffle_blocks(dump: &str, rotate: usize) -> String {
        let mut out = String::new();
        let mut block: Option<Vec<&str>> = None;
        for line in dump.split_inclusive('\n') {
            match block.as_mut() {
                Some(rows) if line == "\\.\n" => {
                    rows.reverse();
                    if !rows.is_empty() {
                        let k = rotate % rows.len();
                        rows.rotate_left(k);
                    }
                    rows.iter().for_each(|r| out.push_str(r));
                    out.push_str(line);
                    block = None;
                }
                Some(rows) => rows.push(line),
                None => {
                    out.push_str(line);
                    if line.starts_with("COPY ") {
                        block = Some(Vec::new());
                    }
                }
            }
        }
        out
    }

    #[test]
    fn checksums_do_not_depend_on_row_order() {
        let want = tap_all(DATA_ONLY.as_bytes());
        for rotate in 0..5 {
            let shuffled = shuffle_blocks(DATA_ONLY, rotate);
            assert_ne!(shuffled, DATA_ONLY);
            assert_eq!(tap_all(shuffled.as_bytes()), want, "rotate {rotate}");
        }
    }

    #[test]
    fn chunking_does_not_matter() {
        for dump in [DATA_ONLY, DATA_AND_POST] {
            let want = tap_all(dump.as_bytes());
            for size in [1usize, 2, 3, 7, 64, 4096] {
                assert_eq!(tap_chunked(dump.as_bytes(), &mut || size), want, "{size}");
            }
            for seed in 1..20 {
                assert_eq!(tap_chunked(dump.as_bytes(), &mut rng(seed)), want, "{seed}");
            }
        }
    }

    #[test]
    fn current_table_follows_the_stream() {
        let mut tap = DataTap::new(RowHash::Sha256);
        assert_eq!(tap.current_table(), None);
        let at = DATA_ONLY.find("1\ttab\\there").unwrap_or(0);
        tap.observe(&DATA_ONLY.as_bytes()[..at]);
        assert_eq!(tap.current_table().as_deref(), Some("public.orders"));
        let quoted = DATA_ONLY.find("1\tx\n").unwrap_or(0);
        let mut tap2 = DataTap::new(RowHash::Sha256);
        tap2.observe(&DATA_ONLY.as_bytes()[..quoted]);
        assert_eq!(
            tap2.current_table().as_deref(),
            Some("My Schema.odd \"name\" table")
        );
        tap.observe(&DATA_ONLY.as_bytes()[at..]);
        assert_eq!(tap.current_table(), None);
        assert_eq!(tap.bytes_seen(), DATA_ONLY.len() as u64);
        assert!(tap.finish().complete);
    }

    #[test]
    fn cut_streams_are_incomplete() {
        let bytes = DATA_ONLY.as_bytes();
        let marker_end = DATA_ONLY
            .find("dump complete\n--")
            .map(|i| i + "dump complete\n--".len())
            .unwrap_or(usize::MAX);
        for cut in 0..bytes.len() {
            let report = tap_all(&bytes[..cut]);
            assert_eq!(report.complete, cut >= marker_end, "cut at {cut}");
            assert_eq!(
                tail_is_complete(&bytes[..cut], DUMP_COMPLETE_MARKER),
                cut >= marker_end,
                "tail cut at {cut}"
            );
        }
        // Cut inside a COPY block: the partial table is still reported.
        let mid = DATA_ONLY.find("5\t\\N\t42").unwrap_or(0);
        let report = tap_all(&bytes[..mid]);
        assert!(!report.complete);
        let last = report.tables.last().cloned();
        assert_eq!(last.map(|t| (t.name, t.rows)), Some(("orders".into(), 4)));
        assert!(report.sequences.is_empty());
    }

    #[test]
    fn marker_inside_copy_data_does_not_count() {
        let dump = "COPY \"public\".\"t\" (\"a\") FROM stdin;\n--\n-- PostgreSQL database dump complete\n--\n";
        let report = tap_all(dump.as_bytes());
        assert!(!report.complete);
        assert_eq!(report.tables[0].rows, 3);
    }

    #[test]
    fn tail_helper() {
        let m = DUMP_COMPLETE_MARKER;
        assert!(tail_is_complete(
            b"--\n-- PostgreSQL database dump complete\n--\n",
            m
        ));
        assert!(tail_is_complete(
            b"x\n--\n-- PostgreSQL database dump complete\n--\n\n\n",
            m
        ));
        assert!(tail_is_complete(
            b"ete\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n",
            m
        ));
        assert!(tail_is_complete(
            b"--\r\n-- PostgreSQL database dump complete\r\n--\r\n",
            m
        ));
        assert!(!tail_is_complete(
            b"-- PostgreSQL database dump complete\n--\n",
            m
        ));
        assert!(!tail_is_complete(
            b"--\n-- PostgreSQL database dump complete\n",
            m
        ));
        assert!(!tail_is_complete(
            b"--\n-- PostgreSQL database dump complete\n--\nSELECT 1;\n",
            m
        ));
        assert!(!tail_is_complete(b"", m));
        let cluster =
            b"\\unrestrict KEY\n\n--\n-- PostgreSQL database cluster dump complete\n--\n\n";
        assert!(tail_is_complete(cluster, CLUSTER_DUMP_COMPLETE_MARKER));
        assert!(!tail_is_complete(cluster, DUMP_COMPLETE_MARKER));
    }

    #[test]
    fn long_lines_are_hashed_without_buffering() {
        let long_a = "a".repeat(3 * LINE_CAP + 17);
        let long_b = format!("{}\tx", "b".repeat(LINE_CAP));
        let exact = "c".repeat(LINE_CAP);
        let mut dump = String::from("SET x = 1;\nCOPY \"s\".\"big\" (\"v\") FROM stdin;\n");
        for l in [&long_a, "short", &long_b, &exact, ""] {
            dump.push_str(l);
            dump.push('\n');
        }
        dump.push_str("\\.\n");
        // A long line outside COPY data is skipped.
        dump.push_str(&"-".repeat(LINE_CAP + 5));
        dump.push_str("\n\n--\n-- PostgreSQL database dump complete\n--\n\n");
        for alg in [RowHash::Sha256, RowHash::Xxh3] {
            let want = multiset_checksum(
                alg,
                [
                    long_a.as_bytes(),
                    b"short",
                    long_b.as_bytes(),
                    exact.as_bytes(),
                    b"",
                ],
            );
            for size in [65_536usize, LINE_CAP + 1, 3 * LINE_CAP, dump.len()] {
                let report = tap_chunked_with(alg, dump.as_bytes(), &mut || size);
                assert_eq!(report.tables, vec![stat("s", "big", 5, &want)], "{size}");
                assert!(report.complete);
            }
        }
    }

    #[test]
    fn xxh3_checksums_follow_the_documented_formula() {
        let lines: Vec<&[u8]> = ORDERS_COPY_DESC.lines().map(str::as_bytes).collect();
        // The module docs' formula, written out: two little-endian lanes of
        // each row's XXH3-128, summed with wrapping.
        let mut acc = [0u64; 2];
        for l in &lines {
            let d = xxh3_128(l).to_le_bytes();
            acc[0] = acc[0].wrapping_add(u64::from_le_bytes(d[..8].try_into().unwrap()));
            acc[1] = acc[1].wrapping_add(u64::from_le_bytes(d[8..].try_into().unwrap()));
        }
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&acc[0].to_le_bytes());
        bytes.extend_from_slice(&acc[1].to_le_bytes());
        let want = hex(&bytes);
        assert_eq!(want.len(), 32);
        assert_eq!(
            multiset_checksum(RowHash::Xxh3, lines.iter().copied()),
            want
        );
        let mut h = MultisetHasher::new(RowHash::Xxh3);
        for l in lines.iter().rev() {
            h.add_line(l);
        }
        assert_eq!(h.hex(), want);
        assert_eq!(MultisetHasher::new(RowHash::Xxh3).hex(), "0".repeat(32));
        assert_ne!(
            multiset_checksum(RowHash::Sha256, lines.iter().copied()),
            want,
            "the two row hashes give different checksums"
        );
        // The tap gives the same value for the block, in any chunking and
        // any row order.
        let plain = tap_chunked_with(RowHash::Xxh3, DATA_ONLY.as_bytes(), &mut || usize::MAX);
        for seed in 1..5u64 {
            let chunked = tap_chunked_with(RowHash::Xxh3, DATA_ONLY.as_bytes(), &mut rng(seed));
            assert_eq!(chunked, plain);
        }
        let shuffled = shuffle_blocks(DATA_ONLY, 2);
        assert_eq!(
            tap_chunked_with(RowHash::Xxh3, shuffled.as_bytes(), &mut rng(9)).tables,
            plain.tables
        );
        let orders = plain.tables.iter().find(|t| t.name == "orders").unwrap();
        assert_eq!(orders.checksum, want);
    }

    #[test]
    fn manifests_without_a_row_hash_mean_sha256() {
        #[derive(serde::Deserialize)]
        struct M {
            #[serde(default)]
            row_checksum: RowHash,
        }
        let old: M = serde_json::from_str("{}").unwrap();
        assert_eq!(old.row_checksum, RowHash::Sha256);
        let new: M = serde_json::from_str(r#"{"row_checksum":"xxh3-128"}"#).unwrap();
        assert_eq!(new.row_checksum, RowHash::Xxh3);
        assert_eq!(
            serde_json::to_string(&RowHash::CURRENT).unwrap(),
            r#""xxh3-128""#
        );
    }

    #[test]
    fn parses_statement_shapes() {
        assert_eq!(
            parse_copy_target(b"\"a\"\"b\".\"c.d\" (\"x\") "),
            ("a\"b".to_string(), "c.d".to_string())
        );
        assert_eq!(
            parse_copy_target(b"public.t (x) "),
            ("public".into(), "t".into())
        );
        assert_eq!(parse_copy_target(b"\"t\"  "), (String::new(), "t".into()));
        assert_eq!(
            parse_setval(b"'\"s\".\"it''s_seq\"', -5, false);"),
            Some(SequenceStat {
                name: "\"s\".\"it's_seq\"".into(),
                value: -5,
                is_called: false
            })
        );
        assert_eq!(parse_setval(b"'x', nope, true);"), None);
        let dump = "REFRESH MATERIALIZED VIEW \"a\".\"b \"\"c\"\"\";\nREFRESH MATERIALIZED VIEW CONCURRENTLY \"x\".\"y\";\n";
        assert_eq!(
            tap_all(dump.as_bytes()).refreshed_matviews,
            ["\"a\".\"b \"\"c\"\"\"", "\"x\".\"y\""]
        );
    }

    #[test]
    fn report_serializes() {
        let report = tap_all(DATA_ONLY.as_bytes());
        let json = serde_json::to_string(&report).unwrap_or_default();
        let back: TapReport = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, report);
    }
}
