//! The last line of defence between a backup's SQL and psql: a streaming
//! scanner that reads the SQL the way psql's own lexer does (quotes,
//! dollar quotes, comments, parentheses, COPY data) and refuses every psql
//! meta-command except the `\restrict` / `\unrestrict` pair pg_dump writes,
//! and every transaction-control statement that could end the restore's
//! single transaction early. pg_dump wraps large objects in `BEGIN;` /
//! `COMMIT;` in data dumps; those two statements are dropped (the restore's
//! own transaction holds everything), as are the `REFRESH MATERIALIZED VIEW`
//! statements supabackup appends to data.sql (the restore refreshes after
//! the post-data section instead).
//!
//! Every byte a restore executes was checked against the manifest first;
//! this guard makes sure that even a file that somehow passed those checks
//! cannot run a shell command or commit half a restore.

use std::io::Write;

use crate::engine::error::{Error, ErrorKind, Result};

/// Which statements a stream may hold besides ordinary SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// data.sql: drops `BEGIN;`, `COMMIT;` and matview refreshes.
    Data,
    /// Everything else (roles.sql, history.sql, pg_restore's output).
    Script,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Normal,
    /// After `-` or `/`: maybe a comment starts.
    Dash,
    Slash,
    LineComment,
    /// Nested block comments; `star`/`slash`: the previous byte.
    BlockComment {
        depth: u32,
        star: bool,
        slash: bool,
    },
    Quote {
        escapes: bool,
        closing: bool,
        backslash: bool,
    },
    DQuote {
        closing: bool,
    },
    /// After `$`: reading a possible dollar-quote tag.
    DollarStart {
        tag: Vec<u8>,
    },
    Dollar {
        tag: Vec<u8>,
        matched: Option<usize>,
    },
    Meta {
        line: Vec<u8>,
    },
    /// After a `COPY ... FROM stdin;`: the rest of its line.
    CopyLineEnd,
    CopyData {
        line: Vec<u8>,
    },
}

/// What to do with the statement being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Undecided,
    Keep,
    Drop,
}

/// The scanner. Feed it with [`SqlGuard::push`], end with [`SqlGuard::finish`].
pub struct SqlGuard {
    name: String,
    policy: Policy,
    state: State,
    line: u64,
    paren: u32,
    prev: u8,
    prev2: u8,
    /// The start of the current statement, while undecided (or for COPY).
    head: Vec<u8>,
    in_statement: bool,
    decision: Decision,
    /// Bytes of the current statement held back while undecided.
    held: Vec<u8>,
    restrict_key: Option<String>,
}

const HEAD_LEN: usize = 64;

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn normalize(head: &[u8]) -> String {
    let text = String::from_utf8_lossy(head);
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase()
}

impl SqlGuard {
    pub fn new(name: impl Into<String>, policy: Policy) -> Self {
        SqlGuard {
            name: name.into(),
            policy,
            state: State::Normal,
            line: 1,
            paren: 0,
            prev: b'\n',
            prev2: b'\n',
            head: Vec::new(),
            in_statement: false,
            decision: Decision::Undecided,
            held: Vec::new(),
            restrict_key: None,
        }
    }

    fn refuse(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Corrupt,
            format!(
                "{} holds {what} at line {}: refused, nothing was changed",
                self.name, self.line
            ),
        )
        .with_hint("a backup's SQL comes from pg_dump and never holds that; the file is not the one the backup wrote")
    }

    /// Decides the current statement from its start; `complete` when it ended.
    fn decide(&self, complete: bool) -> Result<Decision> {
        let text = normalize(&self.head);
        let stmt = text.trim_end_matches(';').trim_end();
        let word = stmt.split(' ').next().unwrap_or("");
        let transaction = matches!(
            word,
            "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE"
        ) || stmt.starts_with("START TRANSACTION")
            || stmt.starts_with("PREPARE TRANSACTION");
        if !complete && text.len() < HEAD_LEN && !text.contains(' ') {
            return Ok(Decision::Undecided);
        }
        if self.policy == Policy::Data {
            if complete && (stmt == "BEGIN" || stmt == "COMMIT") {
                return Ok(Decision::Drop);
            }
            if stmt.starts_with("REFRESH MATERIALIZED VIEW") {
                return Ok(Decision::Drop);
            }
        }
        if transaction && (complete || text.len() >= HEAD_LEN || text.contains(' ')) {
            return Err(self.refuse(&format!("a transaction statement ({word})")));
        }
        if !complete && text.len() < HEAD_LEN {
            // A statement that may still become one of these stays undecided.
            let watched: &[&str] = match self.policy {
                Policy::Data => &[
                    "START TRANSACTION",
                    "PREPARE TRANSACTION",
                    "REFRESH MATERIALIZED VIEW",
                ],
                Policy::Script => &["START TRANSACTION", "PREPARE TRANSACTION"],
            };
            if watched.iter().any(|w| w.starts_with(stmt)) {
                return Ok(Decision::Undecided);
            }
        }
        Ok(Decision::Keep)
    }

    fn is_copy_from_stdin(&self) -> bool {
        let text = normalize(&self.head);
        text.starts_with("COPY ") && text.ends_with("FROM STDIN;")
    }

    /// Sends a byte of the current statement where its decision says.
    fn statement_byte(&mut self, b: u8, out: &mut dyn Write) -> Result<()> {
        if !self.in_statement {
            self.in_statement = true;
            self.head.clear();
            self.decision = Decision::Undecided;
        }
        // A COPY statement is kept whole (its end says FROM stdin); of
        // others the start is enough.
        let copy = self.head.len() >= 4 && self.head[..4].eq_ignore_ascii_case(b"COPY");
        if self.head.len() < 4096 || (copy && self.head.len() < 1 << 20) {
            self.head.push(b);
        }
        match self.decision {
            Decision::Keep => write(out, &[b]),
            Decision::Drop => Ok(()),
            Decision::Undecided => {
                self.held.push(b);
                let d = self.decide(false)?;
                self.apply(d, out)
            }
        }
    }

    fn apply(&mut self, d: Decision, out: &mut dyn Write) -> Result<()> {
        self.decision = d;
        match d {
            Decision::Keep => {
                let held = std::mem::take(&mut self.held);
                write(out, &held)
            }
            Decision::Drop => {
                self.held.clear();
                Ok(())
            }
            Decision::Undecided => Ok(()),
        }
    }

    /// A byte of white space or a comment: inside a statement it is part of
    /// it, between statements it goes straight through.
    fn loose_byte(&mut self, b: u8, out: &mut dyn Write) -> Result<()> {
        if self.in_statement {
            self.statement_byte(b, out)
        } else {
            write(out, &[b])
        }
    }

    fn end_statement(&mut self, out: &mut dyn Write) -> Result<bool> {
        if self.decision == Decision::Undecided {
            let d = self.decide(true)?;
            let d = if d == Decision::Undecided {
                Decision::Keep
            } else {
                d
            };
            self.apply(d, out)?;
        }
        let copy = self.decision == Decision::Keep && self.is_copy_from_stdin();
        self.in_statement = false;
        self.paren = 0;
        Ok(copy)
    }

    fn meta_command(&mut self, line: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(line);
        let mut words = text.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let arg = words.next().map(str::to_owned);
        if self.in_statement {
            return Err(self.refuse(&format!("a psql command (\\{cmd}) inside a statement")));
        }
        match (cmd, arg, &self.restrict_key) {
            ("restrict", Some(key), None) => {
                self.restrict_key = Some(key);
                Ok(())
            }
            ("unrestrict", Some(key), Some(open)) if &key == open => {
                self.restrict_key = None;
                Ok(())
            }
            _ => Err(self.refuse(&format!("the psql command \\{cmd}"))),
        }
    }

    /// Scans `input`, writing what psql may run to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut dyn Write) -> Result<()> {
        let mut i = 0;
        while i < input.len() {
            // Fast path: COPY data passes through line by line.
            if let State::CopyData { line } = &mut self.state {
                let rest = &input[i..];
                match memchr::memchr(b'\n', rest) {
                    Some(n) => {
                        let mut l = std::mem::take(line);
                        if l.len() < 4 {
                            l.extend_from_slice(&rest[..n.min(4)]);
                        }
                        let whole_short = l.len() <= 3;
                        write(out, &rest[..=n])?;
                        self.line += 1;
                        i += n + 1;
                        if whole_short && (l == b"\\." || l == b"\\.\r") {
                            self.state = State::Normal;
                            self.prev = b'\n';
                        }
                    }
                    None => {
                        if line.len() < 4 {
                            line.extend_from_slice(&rest[..rest.len().min(4)]);
                        }
                        write(out, rest)?;
                        i = input.len();
                    }
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.byte(b, out)?;
            if b == b'\n' {
                self.line += 1;
            }
        }
        Ok(())
    }

    fn byte(&mut self, b: u8, out: &mut dyn Write) -> Result<()> {
        let state = std::mem::replace(&mut self.state, State::Normal);
        self.state = match state {
            State::Normal => return self.normal(b, out),
            State::Dash => {
                if b == b'-' {
                    self.loose_byte(b'-', out)?;
                    self.loose_byte(b'-', out)?;
                    State::LineComment
                } else {
                    self.significant(b'-', out)?;
                    return self.normal(b, out);
                }
            }
            State::Slash => {
                if b == b'*' {
                    self.loose_byte(b'/', out)?;
                    self.loose_byte(b'*', out)?;
                    State::BlockComment {
                        depth: 1,
                        star: false,
                        slash: false,
                    }
                } else {
                    self.significant(b'/', out)?;
                    return self.normal(b, out);
                }
            }
            State::LineComment => {
                self.loose_byte(b, out)?;
                if b == b'\n' {
                    State::Normal
                } else {
                    State::LineComment
                }
            }
            State::BlockComment { depth, star, slash } => {
                self.loose_byte(b, out)?;
                if star && b == b'/' {
                    if depth == 1 {
                        State::Normal
                    } else {
                        State::BlockComment {
                            depth: depth - 1,
                            star: false,
                            slash: false,
                        }
                    }
                } else if slash && b == b'*' {
                    State::BlockComment {
                        depth: depth + 1,
                        star: false,
                        slash: false,
                    }
                } else {
                    State::BlockComment {
                        depth,
                        star: b == b'*',
                        slash: b == b'/',
                    }
                }
            }
            State::Quote {
                escapes,
                closing,
                backslash,
            } => {
                if closing {
                    if b == b'\'' {
                        self.statement_byte(b, out)?;
                        State::Quote {
                            escapes,
                            closing: false,
                            backslash: false,
                        }
                    } else {
                        self.prev = b'\'';
                        return self.normal(b, out);
                    }
                } else {
                    self.statement_byte(b, out)?;
                    if backslash {
                        State::Quote {
                            escapes,
                            closing: false,
                            backslash: false,
                        }
                    } else if escapes && b == b'\\' {
                        State::Quote {
                            escapes,
                            closing: false,
                            backslash: true,
                        }
                    } else if b == b'\'' {
                        State::Quote {
                            escapes,
                            closing: true,
                            backslash: false,
                        }
                    } else {
                        State::Quote {
                            escapes,
                            closing: false,
                            backslash: false,
                        }
                    }
                }
            }
            State::DQuote { closing } => {
                if closing && b != b'"' {
                    self.prev = b'"';
                    return self.normal(b, out);
                }
                self.statement_byte(b, out)?;
                State::DQuote {
                    closing: !closing && b == b'"',
                }
            }
            State::DollarStart { mut tag } => {
                let valid = if tag.is_empty() {
                    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
                } else {
                    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
                };
                if b == b'$' {
                    self.statement_byte(b, out)?;
                    State::Dollar { tag, matched: None }
                } else if valid {
                    self.statement_byte(b, out)?;
                    tag.push(b);
                    State::DollarStart { tag }
                } else {
                    // `$1` or a `$` that starts no quote.
                    self.prev = b'$';
                    return self.normal(b, out);
                }
            }
            State::Dollar { tag, matched } => {
                self.statement_byte(b, out)?;
                match matched {
                    None if b == b'$' => {
                        if tag.is_empty() {
                            self.prev = b'$';
                            State::Normal
                        } else {
                            State::Dollar {
                                tag,
                                matched: Some(0),
                            }
                        }
                    }
                    None => State::Dollar { tag, matched: None },
                    Some(n) if n == tag.len() && b == b'$' => {
                        self.prev = b'$';
                        State::Normal
                    }
                    Some(n) if n < tag.len() && tag[n] == b => State::Dollar {
                        tag,
                        matched: Some(n + 1),
                    },
                    Some(_) if b == b'$' => State::Dollar {
                        tag,
                        matched: Some(0),
                    },
                    Some(_) => State::Dollar { tag, matched: None },
                }
            }
            State::Meta { mut line } => {
                if b == b'\n' {
                    self.meta_command(&line)?;
                    write(out, b"\\")?;
                    write(out, &line)?;
                    write(out, b"\n")?;
                    self.prev = b'\n';
                    State::Normal
                } else {
                    line.push(b);
                    if line.len() > 4096 {
                        return Err(self.refuse("an overlong psql command"));
                    }
                    State::Meta { line }
                }
            }
            State::CopyLineEnd => {
                write(out, &[b])?;
                if b == b'\n' {
                    State::CopyData { line: Vec::new() }
                } else if b.is_ascii_whitespace() {
                    State::CopyLineEnd
                } else {
                    return Err(self.refuse("text after a COPY statement"));
                }
            }
            State::CopyData { .. } => unreachable!("handled in push"),
        };
        Ok(())
    }

    /// A byte that starts or continues a statement.
    fn significant(&mut self, b: u8, out: &mut dyn Write) -> Result<()> {
        self.statement_byte(b, out)?;
        self.prev2 = self.prev;
        self.prev = b;
        Ok(())
    }

    fn normal(&mut self, b: u8, out: &mut dyn Write) -> Result<()> {
        match b {
            b'-' => {
                self.state = State::Dash;
                Ok(())
            }
            b'/' => {
                self.state = State::Slash;
                Ok(())
            }
            b'\\' => {
                self.state = State::Meta { line: Vec::new() };
                Ok(())
            }
            b'\'' => {
                let escapes =
                    matches!(self.prev, b'E' | b'e') && !is_ident(self.prev2) && self.in_statement;
                self.significant(b, out)?;
                self.state = State::Quote {
                    escapes,
                    closing: false,
                    backslash: false,
                };
                Ok(())
            }
            b'"' => {
                self.significant(b, out)?;
                self.state = State::DQuote { closing: false };
                Ok(())
            }
            b'$' if !is_ident(self.prev) => {
                self.significant(b, out)?;
                self.state = State::DollarStart { tag: Vec::new() };
                Ok(())
            }
            b'(' => {
                self.paren += 1;
                self.significant(b, out)
            }
            b')' => {
                self.paren = self.paren.saturating_sub(1);
                self.significant(b, out)
            }
            b';' if self.paren == 0 => {
                self.significant(b, out)?;
                if self.end_statement(out)? {
                    self.state = State::CopyLineEnd;
                }
                self.prev = b' ';
                Ok(())
            }
            b if b.is_ascii_whitespace() => {
                self.loose_byte(b, out)?;
                self.prev2 = self.prev;
                self.prev = b' ';
                Ok(())
            }
            b => self.significant(b, out),
        }
    }

    /// Checks that the stream ended cleanly (no open quote, statement or
    /// restricted section) and writes what was held back.
    pub fn finish(&mut self, out: &mut dyn Write) -> Result<()> {
        match std::mem::replace(&mut self.state, State::Normal) {
            State::Meta { line } => {
                self.meta_command(&line)?;
                write(out, b"\\")?;
                write(out, &line)?;
            }
            State::Quote { closing: true, .. } | State::DQuote { closing: true } => {}
            State::Quote { .. } | State::DQuote { .. } | State::Dollar { .. } => {
                return Err(self.refuse("an unterminated quoted string at its end (truncated)"));
            }
            State::CopyData { .. } | State::CopyLineEnd => {
                return Err(self.refuse("an unterminated COPY block at its end (truncated)"));
            }
            State::Dash => self.significant(b'-', out)?,
            State::Slash => self.significant(b'/', out)?,
            _ => {}
        }
        if self.in_statement {
            let text = normalize(&self.head);
            if !text.is_empty() {
                return Err(self.refuse("an unterminated statement at its end (truncated)"));
            }
        }
        if self.restrict_key.is_some() {
            return Err(self.refuse("no \\unrestrict to end its \\restrict (truncated)"));
        }
        Ok(())
    }
}

fn write(out: &mut dyn Write, bytes: &[u8]) -> Result<()> {
    out.write_all(bytes).map_err(|e| {
        Error::new(
            ErrorKind::Connection,
            format!("psql stopped reading its input: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(policy: Policy, input: &str, chunk: usize) -> Result<String> {
        let mut g = SqlGuard::new("data.sql", policy);
        let mut out = Vec::new();
        for c in input.as_bytes().chunks(chunk.max(1)) {
            g.push(c, &mut out)?;
        }
        g.finish(&mut out)?;
        Ok(String::from_utf8(out).expect("utf8"))
    }

    fn both(policy: Policy, input: &str) -> Result<String> {
        let whole = run(policy, input, usize::MAX);
        for chunk in [1, 2, 3, 7] {
            assert_eq!(
                run(policy, input, chunk).map_err(|e| e.message),
                whole.clone().map_err(|e| e.message),
                "chunking {chunk} changes the result"
            );
        }
        whole
    }

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n\n\
SET statement_timeout = 0;\n\
SELECT pg_catalog.set_config('search_path', '', false);\n\
CREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS $_$\nSELECT '\\! not a command'; -- ; \n$_$;\n\
CREATE FUNCTION public.g() RETURNS text LANGUAGE plpgsql AS $body$\nBEGIN\n  RETURN E'it\\'s \\\\! fine;';\nEND\n$body$;\n\
COMMENT ON TABLE public.t IS 'a ''quoted''; \\! text\nover lines';\n\
/* a /* nested */ comment; \\! */\n\
COPY \"public\".\"t\" (\"id\", \"body\") FROM stdin;\n\
1\t\\\\! data; COMMIT;\n\
2\t\\.x\n\
\\.\n\
SELECT pg_catalog.setval('\"public\".\"t_id_seq\"', 2, true);\n\
\n\\unrestrict abc123\n\n--\n-- PostgreSQL database dump complete\n--\n";

    #[test]
    fn passes_pg_dump_output_unchanged() {
        assert_eq!(both(Policy::Script, DUMP).expect("clean"), DUMP);
        assert_eq!(both(Policy::Data, DUMP).expect("clean"), DUMP);
    }

    #[test]
    fn refuses_meta_commands_and_transaction_control() {
        for bad in [
            "SELECT 1;\n\\! id > /tmp/x\n",
            "SELECT 1 \\gexec\n",
            "\\copy t from '/etc/passwd'\n",
            "\\restrict a\n\\unrestrict b\n",
            "\\unrestrict a\n",
            "\\restrict a\nSELECT 1;\n",
            "SELECT 1;\nCOMMIT;\nDROP TABLE t;\n",
            "ROLLBACK;\n",
            "  commit  ;\n",
            "END;\n",
            "SAVEPOINT a;\n",
            "START TRANSACTION;\n",
            "COPY t FROM stdin; SELECT 1;\n1\n\\.\n",
            "SELECT 'unterminated\n",
            "CREATE FUNCTION f() AS $x$ body\n",
            "COPY t FROM stdin;\n1\n",
        ] {
            let err = both(Policy::Script, bad).expect_err(bad);
            assert_eq!(err.kind, ErrorKind::Corrupt, "{bad}: {err}");
            assert!(err.message.contains("refused"), "{bad}: {err}");
        }
        // In data.sql, BEGIN/COMMIT around large objects are dropped.
        let blob = "BEGIN;\n\nSELECT pg_catalog.lo_open('16385', 131072);\nSELECT pg_catalog.lowrite(0, '\\x41');\nSELECT pg_catalog.lo_close(0);\n\nCOMMIT;\n";
        let out = both(Policy::Data, blob).expect("blob");
        assert!(!out.contains("BEGIN") && !out.contains("COMMIT"), "{out}");
        assert!(
            out.contains("lo_open") && out.contains("lo_close(0);"),
            "{out}"
        );
        assert!(both(Policy::Script, blob).is_err(), "scripts keep no BEGIN");
        let err = both(Policy::Data, "SELECT 1;\n\\! id\n").expect_err("meta");
        assert!(err.message.contains("line 2"), "{err}");
    }

    #[test]
    fn drops_the_matview_refreshes_of_data_sql() {
        let data = "SET session_replication_role = replica;\n\
COPY \"public\".\"a\" (\"id\") FROM stdin;\n1\n\\.\n\n\
-- supabackup: materialized views that held data at backup time\n\
SET session_replication_role = DEFAULT;\n\
REFRESH MATERIALIZED VIEW \"public\".\"mv\";\n\
REFRESH  MATERIALIZED\nVIEW \"x\".\"y\";\n\
\n-- supabackup data dump complete\n";
        let out = both(Policy::Data, data).expect("data");
        assert!(!out.contains("REFRESH"), "{out}");
        assert!(out.contains("1\n\\.\n") && out.ends_with("-- supabackup data dump complete\n"));
        assert!(
            both(Policy::Script, data)
                .expect("script")
                .contains("REFRESH")
        );
    }

    #[test]
    fn quotes_and_identifiers_are_lexed_like_psql() {
        // `$` inside identifiers and `$1` parameters start no quote.
        let ok = "CREATE FUNCTION a$b(int) RETURNS int LANGUAGE sql AS 'SELECT $1';\nSELECT \"we\"\"ird;\\!\";\nSELECT 1 - -2 / 3;\n";
        assert_eq!(both(Policy::Script, ok).expect("ok"), ok);
        // A semicolon inside parentheses does not end the statement.
        let rule = "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); INSERT INTO u VALUES (2));\n";
        assert_eq!(both(Policy::Script, rule).expect("rule"), rule);
        // E'' strings escape quotes; ordinary strings do not.
        assert!(both(Policy::Script, "SELECT E'a\\'b';\n\\! x\n").is_err());
        assert!(both(Policy::Script, "SELECT 'a\\';\n\\! x\n").is_err());
        assert_eq!(
            both(Policy::Script, "SELECT 'a\\';\n").expect("plain backslash"),
            "SELECT 'a\\';\n"
        );
    }
}
