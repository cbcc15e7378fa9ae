//! Exact, statement-aware filtering of the output of
//! `pg_dumpall --roles-only --no-role-passwords --quote-all-identifiers`.
//!
//! Supabase's CLI filters that dump with line-based `sed`; this module splits
//! it into SQL statements instead (a statement ends at a `;` outside string
//! literals, quoted identifiers, dollar quotes and comments, so a role comment
//! holding newlines or `;` is handled) and decides per statement:
//!
//! * `CREATE ROLE|USER|GROUP x`, `ALTER ROLE|USER|GROUP x ...` (including
//!   `... IN DATABASE d SET ...`), `COMMENT ON ROLE x IS ...`,
//!   `SECURITY LABEL [FOR p] ON ROLE x IS ...` and `DROP ROLE [IF EXISTS] x`
//!   are **dropped** when the subject role is reserved by the platform
//!   ([`is_reserved_role`], which includes `postgres` and `pg_*`). A `DROP`
//!   naming several roles is dropped only when all of them are reserved.
//! * Membership grants `GRANT r1[, r2] TO m1[, m2] [WITH ...] [GRANTED BY g]`
//!   are **dropped** when every granted role *and* every member is reserved
//!   (the platform recreates those memberships). Otherwise they are kept, and
//!   when the grantor `g` is reserved exactly the ` GRANTED BY "g"` clause
//!   (from the end of the preceding token to the end of the grantor) is cut:
//!   a non-superuser restoring on Supabase cannot grant as `supabase_admin`.
//!   PG16+ option lists (`WITH ADMIN OPTION, INHERIT TRUE, SET FALSE`) are
//!   left untouched.
//! * Everything else — comment lines, blank lines, `SET` statements, psql
//!   meta-commands such as `\restrict`/`\unrestrict`, privilege grants,
//!   unrecognised statements — is kept byte for byte, and so is every kept
//!   statement (apart from the cut clause above).
//!
//! A dropped statement disappears together with the rest of its line (the
//! newline after the `;`), so the output has no holes where it stood.
//! Identifiers are compared as PostgreSQL would: a bare word is folded to
//! lower case (`ANON` is `anon`), a quoted one is taken verbatim with `""`
//! unescaped (`"ANON"` is not reserved).
//!
//! Memory: the filter holds at most the current line plus the statement it
//! belongs to (a statement spanning several lines is held until its `;`).

use crate::engine::supabase::is_reserved_role;

/// Streaming filter over `pg_dumpall --roles-only` output; see the module
/// documentation for the rules.
///
/// Feed it with [`push`](Self::push) in chunks of any size (chunks may split
/// lines and UTF-8 sequences) and end with [`finish`](Self::finish) or
/// [`finish_with_roles`](Self::finish_with_roles). [`kept_roles`](Self::kept_roles)
/// is available at any time; it covers every statement completed so far (with
/// pg_dumpall's output, whose last line ends with a newline, that is all of them
/// once the last chunk has been pushed).
#[derive(Debug, Default)]
pub struct RolesFilter {
    /// Bytes of the current line not yet terminated by `\n`.
    line: Vec<u8>,
    /// Lines of the statement being accumulated (empty between statements).
    unit: Vec<u8>,
    lexer: Lexer,
    kept: Vec<String>,
    dropped: usize,
}

impl RolesFilter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds raw bytes from pg_dumpall (arbitrary chunk boundaries); returns the
    /// filtered bytes that are ready to be written.
    pub fn push(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        let mut rest = input;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(i + 1);
            let mut line = std::mem::take(&mut self.line);
            line.extend_from_slice(head);
            self.handle_line(&line, false, &mut out);
            line.clear();
            self.line = line;
            rest = tail;
        }
        self.line.extend_from_slice(rest);
        out
    }

    /// End of input: returns the remaining filtered bytes (a last line without
    /// a newline, or a statement left without its `;`, which is then judged as
    /// if it were complete).
    pub fn finish(self) -> Vec<u8> {
        self.finish_with_roles().0
    }

    /// Like [`finish`](Self::finish), also returning the names of the roles
    /// whose `CREATE` statements were kept (including any completed by the end
    /// of input).
    pub fn finish_with_roles(mut self) -> (Vec<u8>, Vec<String>) {
        let mut out = Vec::new();
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() || !self.unit.is_empty() {
            self.handle_line(&line, true, &mut out);
        }
        (out, self.kept)
    }

    /// Names (unquoted, as PostgreSQL stores them) of the roles whose `CREATE`
    /// statements were kept so far, in dump order.
    pub fn kept_roles(&self) -> &[String] {
        &self.kept
    }

    /// How many statements were dropped so far.
    pub fn dropped_statements(&self) -> usize {
        self.dropped
    }

    fn handle_line(&mut self, line: &[u8], eof: bool, out: &mut Vec<u8>) {
        if self.unit.is_empty() {
            let trimmed = trim_start_blanks(line);
            let passes = trimmed.iter().all(u8::is_ascii_whitespace)
                || trimmed.starts_with(b"--")
                || trimmed.starts_with(b"\\");
            if passes {
                out.extend_from_slice(line);
                return;
            }
        }
        self.unit.extend_from_slice(line);
        self.lexer.run(&self.unit, eof);
        let complete = eof
            || (self.lexer.state == LexState::Normal
                && self
                    .lexer
                    .toks
                    .last()
                    .is_none_or(|t| t.kind == TokKind::Semicolon));
        if complete {
            let unit = std::mem::take(&mut self.unit);
            let lexer = std::mem::take(&mut self.lexer);
            self.emit_unit(&unit, &lexer.toks, out);
        }
    }

    /// Judges every statement of a complete unit (whole lines ending after a
    /// `;`, or the end of input) and writes what survives.
    fn emit_unit(&mut self, unit: &[u8], toks: &[Tok], out: &mut Vec<u8>) {
        // (span start, span end, tokens of the statement without its `;`)
        let mut stmts: Vec<(usize, usize, &[Tok])> = Vec::new();
        let mut span_start = 0;
        let mut first_tok = 0;
        for (i, t) in toks.iter().enumerate() {
            if t.kind == TokKind::Semicolon {
                stmts.push((span_start, t.end, &toks[first_tok..i]));
                span_start = t.end;
                first_tok = i + 1;
            }
        }
        let mut rest_start = span_start;
        if first_tok < toks.len() {
            // Only at the end of input: a statement without its `;`.
            stmts.push((span_start, unit.len(), &toks[first_tok..]));
            rest_start = unit.len();
        }
        let actions: Vec<Action> = stmts.iter().map(|(_, _, st)| judge(unit, st)).collect();
        let all_dropped = !actions.is_empty() && actions.iter().all(|a| *a == Action::Drop);
        for ((start, end, _), action) in stmts.iter().zip(&actions) {
            match action {
                Action::Drop => self.dropped += 1,
                Action::Keep { created } => {
                    match (created, st_start(toks, unit, *start, *end)) {
                        // A role that already exists on the target (a
                        // re-restore, or a shared cluster) must not abort a
                        // single-transaction restore: CREATE becomes
                        // idempotent; the ALTER ROLE that follows still sets
                        // every attribute.
                        (Some(_), Some(first))
                            if !unit[*start..*end]
                                .windows(IDEMPOTENT_TAG.len())
                                .any(|w| w == IDEMPOTENT_TAG.as_bytes()) =>
                        {
                            out.extend_from_slice(&unit[*start..first]);
                            out.extend_from_slice(b"DO $supabackup$ BEGIN ");
                            out.extend_from_slice(&unit[first..*end]);
                            out.extend_from_slice(
                                b" EXCEPTION WHEN duplicate_object THEN NULL; END $supabackup$;",
                            );
                        }
                        _ => out.extend_from_slice(&unit[*start..*end]),
                    }
                    if let Some(name) = created {
                        self.kept.push(name.clone());
                    }
                }
                Action::Cut { from, to } => {
                    out.extend_from_slice(&unit[*start..*from]);
                    out.extend_from_slice(&unit[*to..*end]);
                }
            }
        }
        if !all_dropped {
            out.extend_from_slice(&unit[rest_start..]);
        }
    }
}

const IDEMPOTENT_TAG: &str = "$supabackup$";

/// Offset of the first token inside `start..end`.
fn st_start(toks: &[Tok], _unit: &[u8], start: usize, end: usize) -> Option<usize> {
    toks.iter()
        .find(|t| t.start >= start && t.end <= end)
        .map(|t| t.start)
}

/// Filters a whole roles dump at once: returns the filtered text and the names
/// of the roles whose `CREATE` statements were kept.
pub fn filter_roles(input: &str) -> (String, Vec<String>) {
    let mut filter = RolesFilter::new();
    let mut out = filter.push(input.as_bytes());
    let (tail, kept) = filter.finish_with_roles();
    out.extend_from_slice(&tail);
    // Cuts happen at ASCII token boundaries, so the output stays valid UTF-8.
    let text = match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    (text, kept)
}

fn trim_start_blanks(line: &[u8]) -> &[u8] {
    let n = line
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    &line[n..]
}

// ---------------------------------------------------------------------------
// Judging statements

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Keep {
        created: Option<String>,
    },
    Drop,
    /// Keep, without the bytes `from..to` (absolute offsets in the unit).
    Cut {
        from: usize,
        to: usize,
    },
}

const KEEP: Action = Action::Keep { created: None };

fn judge(unit: &[u8], st: &[Tok]) -> Action {
    let w = |i: usize, kw: &str| st.get(i).is_some_and(|t| t.is_word(unit, kw));
    let role_kw = |i: usize| w(i, "role") || w(i, "user") || w(i, "group");
    let subject = |i: usize| -> Action {
        match st.get(i).and_then(|t| t.name(unit)) {
            Some(name) if is_reserved_role(&name) => Action::Drop,
            _ => KEEP,
        }
    };
    if w(0, "create") && role_kw(1) {
        return match st.get(2).and_then(|t| t.name(unit)) {
            Some(name) if is_reserved_role(&name) => Action::Drop,
            Some(name) => Action::Keep {
                created: Some(name),
            },
            None => KEEP,
        };
    }
    if w(0, "alter") && role_kw(1) {
        return subject(2);
    }
    if w(0, "comment") && w(1, "on") && role_kw(2) {
        return subject(3);
    }
    if w(0, "security") && w(1, "label") {
        let on = if w(2, "for") { 4 } else { 2 };
        if w(on, "on") && role_kw(on + 1) {
            return subject(on + 2);
        }
        return KEEP;
    }
    if w(0, "drop") && role_kw(1) {
        let first = if w(2, "if") && w(3, "exists") { 4 } else { 2 };
        return match name_list(unit, st, first) {
            Some((names, end)) if end == st.len() && names.iter().all(|n| is_reserved_role(n)) => {
                Action::Drop
            }
            _ => KEEP,
        };
    }
    if w(0, "grant") {
        return judge_grant(unit, st);
    }
    KEEP
}

/// A membership grant: `GRANT names TO names [WITH ...] [GRANTED BY name]`.
/// Anything else starting with `GRANT` (privileges: `GRANT SELECT ON ...`) is
/// kept as it is.
fn judge_grant(unit: &[u8], st: &[Tok]) -> Action {
    let Some((granted, to)) = name_list(unit, st, 1) else {
        return KEEP;
    };
    if !st.get(to).is_some_and(|t| t.is_word(unit, "to")) {
        return KEEP;
    }
    let Some((members, after)) = name_list(unit, st, to + 1) else {
        return KEEP;
    };
    let at_end_or_clause =
        after == st.len() || st[after].is_word(unit, "with") || st[after].is_word(unit, "granted");
    if !at_end_or_clause {
        return KEEP;
    }
    if granted.iter().chain(&members).all(|n| is_reserved_role(n)) {
        return Action::Drop;
    }
    let granted_by = (after..st.len()).find(|&i| {
        st[i].is_word(unit, "granted") && st.get(i + 1).is_some_and(|t| t.is_word(unit, "by"))
    });
    if let Some(i) = granted_by
        && i > 0
        && let Some(grantor) = st.get(i + 2)
        && let Some(name) = grantor.name(unit)
        && is_reserved_role(&name)
    {
        return Action::Cut {
            from: st[i - 1].end,
            to: grantor.end,
        };
    }
    KEEP
}

/// Parses `name [, name]...` starting at token `i`; returns the names and the
/// index of the first token after the list, or `None` when a name is missing.
/// Callers check the token after the list, which is how `GRANT SELECT ON ...`
/// (a word where `TO` should be) is told apart from a membership grant.
fn name_list(unit: &[u8], st: &[Tok], mut i: usize) -> Option<(Vec<String>, usize)> {
    let mut names = Vec::new();
    loop {
        names.push(st.get(i)?.name(unit)?);
        i += 1;
        match st.get(i) {
            Some(t) if t.kind == TokKind::Comma => i += 1,
            _ => return Some((names, i)),
        }
    }
}

// ---------------------------------------------------------------------------
// Tokenizer

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokKind {
    /// Bare word: keyword or unquoted identifier.
    Word,
    /// `"..."` with `""` escapes.
    QuotedIdent,
    /// `'...'`, `E'...'` or `$tag$...$tag$`.
    Str,
    Semicolon,
    Comma,
    /// Any other single byte (operators, digits, parentheses...).
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: TokKind,
    start: usize,
    end: usize,
}

impl Tok {
    fn is_word(&self, unit: &[u8], kw: &str) -> bool {
        self.kind == TokKind::Word && unit[self.start..self.end].eq_ignore_ascii_case(kw.as_bytes())
    }

    /// The identifier this token denotes, as PostgreSQL would resolve it.
    fn name(&self, unit: &[u8]) -> Option<String> {
        let text = &unit[self.start..self.end];
        match self.kind {
            TokKind::Word => Some(String::from_utf8_lossy(text).to_ascii_lowercase()),
            TokKind::QuotedIdent => {
                let inner = text
                    .get(1..text.len().saturating_sub(1))
                    .unwrap_or_default();
                Some(String::from_utf8_lossy(inner).replace("\"\"", "\""))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum LexState {
    #[default]
    Normal,
    Word {
        start: usize,
    },
    Str {
        start: usize,
        backslash_escapes: bool,
    },
    Ident {
        start: usize,
    },
    /// Inside `$tag$...`; the delimiter is `unit[start..start + tag_len]`.
    Dollar {
        start: usize,
        tag_len: usize,
    },
    LineComment,
    BlockComment {
        depth: u32,
    },
}

/// A resumable tokenizer over a growing buffer: [`run`](Self::run) consumes
/// what it can and stops where it needs a byte that has not arrived yet.
#[derive(Debug, Default)]
struct Lexer {
    pos: usize,
    state: LexState,
    toks: Vec<Tok>,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl Lexer {
    fn push(&mut self, kind: TokKind, start: usize, end: usize) {
        self.toks.push(Tok { kind, start, end });
    }

    fn run(&mut self, buf: &[u8], eof: bool) {
        while let Some(&b) = buf.get(self.pos) {
            let pos = self.pos;
            let next = buf.get(pos + 1).copied();
            let wait = next.is_none() && !eof;
            match self.state {
                LexState::Normal => match b {
                    _ if b.is_ascii_whitespace() => self.pos += 1,
                    b'-' | b'/' if wait => return,
                    b'-' if next == Some(b'-') => {
                        self.state = LexState::LineComment;
                        self.pos += 2;
                    }
                    b'/' if next == Some(b'*') => {
                        self.state = LexState::BlockComment { depth: 1 };
                        self.pos += 2;
                    }
                    b'\'' => {
                        self.state = LexState::Str {
                            start: pos,
                            backslash_escapes: false,
                        };
                        self.pos += 1;
                    }
                    b'"' => {
                        self.state = LexState::Ident { start: pos };
                        self.pos += 1;
                    }
                    b'$' => {
                        let mut j = pos + 1;
                        loop {
                            match buf.get(j) {
                                None if !eof => return,
                                Some(b'$') => {
                                    self.state = LexState::Dollar {
                                        start: pos,
                                        tag_len: j + 1 - pos,
                                    };
                                    self.pos = j + 1;
                                    break;
                                }
                                Some(&c)
                                    if is_ident_char(c)
                                        && c != b'$'
                                        && !(j == pos + 1 && c.is_ascii_digit()) =>
                                {
                                    j += 1;
                                }
                                _ => {
                                    self.push(TokKind::Other, pos, pos + 1);
                                    self.pos += 1;
                                    break;
                                }
                            }
                        }
                    }
                    b';' => {
                        self.push(TokKind::Semicolon, pos, pos + 1);
                        self.pos += 1;
                    }
                    b',' => {
                        self.push(TokKind::Comma, pos, pos + 1);
                        self.pos += 1;
                    }
                    _ if is_ident_start(b) => {
                        self.state = LexState::Word { start: pos };
                        self.pos += 1;
                    }
                    _ => {
                        self.push(TokKind::Other, pos, pos + 1);
                        self.pos += 1;
                    }
                },
                LexState::Word { start } => {
                    if is_ident_char(b) {
                        self.pos += 1;
                    } else if b == b'\'' && buf[start..pos].eq_ignore_ascii_case(b"e") {
                        self.state = LexState::Str {
                            start,
                            backslash_escapes: true,
                        };
                        self.pos += 1;
                    } else {
                        self.push(TokKind::Word, start, pos);
                        self.state = LexState::Normal;
                    }
                }
                LexState::Str {
                    start,
                    backslash_escapes,
                } => match b {
                    b'\\' if backslash_escapes => {
                        if wait {
                            return;
                        }
                        self.pos += 2;
                    }
                    b'\'' => {
                        if wait {
                            return;
                        }
                        if next == Some(b'\'') {
                            self.pos += 2;
                        } else {
                            self.push(TokKind::Str, start, pos + 1);
                            self.state = LexState::Normal;
                            self.pos += 1;
                        }
                    }
                    _ => self.pos += 1,
                },
                LexState::Ident { start } => {
                    if b == b'"' {
                        if wait {
                            return;
                        }
                        if next == Some(b'"') {
                            self.pos += 2;
                        } else {
                            self.push(TokKind::QuotedIdent, start, pos + 1);
                            self.state = LexState::Normal;
                            self.pos += 1;
                        }
                    } else {
                        self.pos += 1;
                    }
                }
                LexState::Dollar { start, tag_len } => {
                    let tag = &buf[start..start + tag_len];
                    let here = &buf[pos..];
                    if b != b'$' {
                        self.pos += 1;
                    } else if here.starts_with(tag) {
                        self.push(TokKind::Str, start, pos + tag_len);
                        self.state = LexState::Normal;
                        self.pos += tag_len;
                    } else if here.len() < tag_len && tag.starts_with(here) && !eof {
                        return;
                    } else {
                        self.pos += 1;
                    }
                }
                LexState::LineComment => {
                    if b == b'\n' {
                        self.state = LexState::Normal;
                    }
                    self.pos += 1;
                }
                LexState::BlockComment { depth } => match (b, next) {
                    (b'/' | b'*', None) if !eof => return,
                    (b'/', Some(b'*')) => {
                        self.state = LexState::BlockComment { depth: depth + 1 };
                        self.pos += 2;
                    }
                    (b'*', Some(b'/')) => {
                        self.state = if depth <= 1 {
                            LexState::Normal
                        } else {
                            LexState::BlockComment { depth: depth - 1 }
                        };
                        self.pos += 2;
                    }
                    _ => self.pos += 1,
                },
            }
        }
        if eof {
            // Close whatever was left open by a truncated input.
            let end = buf.len();
            match self.state {
                LexState::Word { start } => self.push(TokKind::Word, start, end),
                LexState::Str { start, .. } | LexState::Dollar { start, .. } => {
                    self.push(TokKind::Str, start, end)
                }
                LexState::Ident { start } => self.push(TokKind::QuotedIdent, start, end),
                LexState::Normal | LexState::LineComment | LexState::BlockComment { .. } => {}
            }
            self.state = LexState::Normal;
            self.pos = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real output of `pg_dumpall -h 127.0.0.1 -U postgres --roles-only
    /// --no-role-passwords --quote-all-identifiers` (PostgreSQL 15.20) after
    /// creating throw-away roles: `anon`, `authenticated`, `authenticator`
    /// (NOINHERIT), `supabase_admin` (superuser), `app_admin` (LOGIN CREATEROLE,
    /// a comment with a newline, `;` and quotes), `app_reader`, `"weird ""quoted""
    /// role"`; memberships `app_reader TO app_admin`, `anon TO app_reader`,
    /// `authenticated TO authenticator`, `anon TO authenticator WITH ADMIN
    /// OPTION`, and two granted while `SET ROLE supabase_admin`; per-role
    /// settings. `root` is a pre-existing role of the test server. Note the
    /// psql `\restrict`/`\unrestrict` lines (PostgreSQL 15.14+).
    const FIXTURE: &str = r#"--
-- PostgreSQL database cluster dump
--

\restrict OFWfTUxF8acI0OzfRBEORj4aXEaiO3FFQgNfeTtaZsohhYmMyxt25jgkKYpqU33

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE "anon";
ALTER ROLE "anon" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
COMMENT ON ROLE "anon" IS 'platform anon';
CREATE ROLE "app_admin";
ALTER ROLE "app_admin" WITH NOSUPERUSER INHERIT CREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
COMMENT ON ROLE "app_admin" IS 'Application admin;
second line; with ''quotes'' and "dq"';
CREATE ROLE "app_reader";
ALTER ROLE "app_reader" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE "authenticated";
ALTER ROLE "authenticated" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE "authenticator";
ALTER ROLE "authenticator" WITH NOSUPERUSER NOINHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE "postgres";
ALTER ROLE "postgres" WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;
CREATE ROLE "root";
ALTER ROLE "root" WITH SUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE "supabase_admin";
ALTER ROLE "supabase_admin" WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;
CREATE ROLE "weird ""quoted"" role";
ALTER ROLE "weird ""quoted"" role" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
COMMENT ON ROLE "weird ""quoted"" role" IS 'weird';

--
-- User Configurations
--

--
-- User Config "anon"
--

ALTER ROLE "anon" SET "statement_timeout" TO '3s';

--
-- User Config "app_admin"
--

ALTER ROLE "app_admin" SET "search_path" TO 'public', 'weird;schema';

--
-- User Config "app_reader"
--

ALTER ROLE "app_reader" SET "statement_timeout" TO '5s';


--
-- Role memberships
--

GRANT "anon" TO "app_reader" GRANTED BY "postgres";
GRANT "anon" TO "authenticator" WITH ADMIN OPTION GRANTED BY "postgres";
GRANT "app_reader" TO "app_admin" GRANTED BY "postgres";
GRANT "app_reader" TO "weird ""quoted"" role" GRANTED BY "supabase_admin";
GRANT "authenticated" TO "app_admin" GRANTED BY "supabase_admin";
GRANT "authenticated" TO "authenticator" GRANTED BY "postgres";




\unrestrict OFWfTUxF8acI0OzfRBEORj4aXEaiO3FFQgNfeTtaZsohhYmMyxt25jgkKYpqU33

--
-- PostgreSQL database cluster dump complete
--

"#;

    const MARKER: &str = "-- PostgreSQL database cluster dump complete";

    /// The fixture with the expected lines removed and the reserved
    /// `GRANTED BY` clauses cut, built independently of the filter.
    fn expected() -> String {
        let dropped = [
            r#"CREATE ROLE "anon";"#,
            r#"ALTER ROLE "anon" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;"#,
            r#"COMMENT ON ROLE "anon" IS 'platform anon';"#,
            r#"CREATE ROLE "authenticated";"#,
            r#"ALTER ROLE "authenticated" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;"#,
            r#"CREATE ROLE "authenticator";"#,
            r#"ALTER ROLE "authenticator" WITH NOSUPERUSER NOINHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;"#,
            r#"CREATE ROLE "postgres";"#,
            r#"ALTER ROLE "postgres" WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;"#,
            r#"CREATE ROLE "supabase_admin";"#,
            r#"ALTER ROLE "supabase_admin" WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;"#,
            r#"ALTER ROLE "anon" SET "statement_timeout" TO '3s';"#,
            r#"GRANT "anon" TO "authenticator" WITH ADMIN OPTION GRANTED BY "postgres";"#,
            r#"GRANT "authenticated" TO "authenticator" GRANTED BY "postgres";"#,
        ];
        let mut out = String::new();
        for line in FIXTURE.split_inclusive('\n') {
            let bare = line.trim_end_matches('\n');
            if dropped.contains(&bare) {
                continue;
            }
            let line = if bare.starts_with("GRANT ") {
                line.replace(r#" GRANTED BY "postgres""#, "")
                    .replace(r#" GRANTED BY "supabase_admin""#, "")
            } else if bare.starts_with("CREATE ROLE ") {
                format!(
                    "DO $supabackup$ BEGIN {bare} EXCEPTION WHEN duplicate_object THEN NULL; END $supabackup$;\n"
                )
            } else {
                line.to_string()
            };
            out.push_str(&line);
        }
        out
    }

    fn kept_names() -> Vec<String> {
        ["app_admin", "app_reader", "root", "weird \"quoted\" role"]
            .map(String::from)
            .to_vec()
    }

    fn run_chunked(input: &[u8], sizes: &mut dyn FnMut() -> usize) -> (Vec<u8>, Vec<String>) {
        let mut f = RolesFilter::new();
        let mut out = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let n = sizes().clamp(1, rest.len());
            let (a, b) = rest.split_at(n);
            out.extend(f.push(a));
            rest = b;
        }
        let (tail, kept) = f.finish_with_roles();
        out.extend(tail);
        (out, kept)
    }

    /// Tiny deterministic PRNG (xorshift) for chunk sizes.
    fn rng(mut seed: u64) -> impl FnMut() -> usize {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 97) as usize + 1
        }
    }

    #[test]
    fn filters_real_dump_exactly() {
        let (out, kept) = filter_roles(FIXTURE);
        assert_eq!(out, expected());
        assert_eq!(kept, kept_names());
        // Spot checks of what the expectation encodes.
        assert!(out.contains("GRANT \"anon\" TO \"app_reader\";\n"));
        assert!(out.contains("GRANT \"app_reader\" TO \"weird \"\"quoted\"\" role\";\n"));
        assert!(out.contains("COMMENT ON ROLE \"app_admin\" IS 'Application admin;\nsecond line; with ''quotes'' and \"dq\"';\n"));
        assert!(out.contains("ALTER ROLE \"app_reader\" SET \"statement_timeout\" TO '5s';\n"));
        assert!(!out.contains("GRANTED BY"));
        assert!(!out.contains("\"postgres\""));
        assert!(!out.contains("\"authenticator\""));
        assert!(out.contains("\\restrict OFWf"));
        assert!(out.contains("\\unrestrict OFWf"));
        assert!(out.ends_with(&format!("--\n{MARKER}\n--\n\n")));
        // Every line of the output is a line of the input, a cut GRANT, or
        // an input CREATE ROLE made idempotent.
        for line in out.lines() {
            let created = line.strip_prefix("DO $supabackup$ BEGIN ").and_then(|l| {
                l.strip_suffix(" EXCEPTION WHEN duplicate_object THEN NULL; END $supabackup$;")
            });
            assert!(
                FIXTURE.lines().any(|l| l == line || Some(l) == created)
                    || line.starts_with("GRANT "),
                "{line}"
            );
        }
    }

    #[test]
    fn chunking_does_not_matter() {
        let want = expected().into_bytes();
        for size in [1usize, 2, 3, 7, 64, 4096] {
            let (out, kept) = run_chunked(FIXTURE.as_bytes(), &mut || size);
            assert_eq!(out, want, "chunk size {size}");
            assert_eq!(kept, kept_names());
        }
        for seed in 1..20u64 {
            let (out, kept) = run_chunked(FIXTURE.as_bytes(), &mut rng(seed));
            assert_eq!(out, want, "seed {seed}");
            assert_eq!(kept, kept_names());
        }
    }

    #[test]
    fn kept_roles_available_before_finish() {
        let mut f = RolesFilter::new();
        let out = f.push(FIXTURE.as_bytes());
        assert_eq!(f.kept_roles(), kept_names().as_slice());
        assert_eq!(f.dropped_statements(), 14);
        assert!(f.finish().is_empty());
        assert_eq!(String::from_utf8(out).ok(), Some(expected()));
    }

    #[test]
    fn pg16_grant_options_and_grantors() {
        let input = "\
GRANT \"authenticated\" TO \"authenticator\" WITH INHERIT TRUE GRANTED BY \"supabase_admin\";
GRANT \"app\" TO \"authenticator\" WITH ADMIN OPTION, INHERIT FALSE, SET FALSE GRANTED BY \"supabase_admin\";
GRANT \"pg_read_all_data\" TO \"app\" WITH INHERIT TRUE GRANTED BY \"app_owner\";
GRANT \"pg_read_all_data\" TO \"postgres\" WITH ADMIN OPTION, INHERIT TRUE GRANTED BY \"supabase_admin\";
GRANT \"app\" TO \"other\";
GRANT SELECT ON TABLE \"t\" TO \"anon\";
grant ANON to Authenticator granted by Postgres;
GRANT \"ANON\" TO \"authenticator\" GRANTED BY \"postgres\";
";
        let want = "\
GRANT \"app\" TO \"authenticator\" WITH ADMIN OPTION, INHERIT FALSE, SET FALSE;
GRANT \"pg_read_all_data\" TO \"app\" WITH INHERIT TRUE GRANTED BY \"app_owner\";
GRANT \"app\" TO \"other\";
GRANT SELECT ON TABLE \"t\" TO \"anon\";
GRANT \"ANON\" TO \"authenticator\";
";
        let (out, kept) = filter_roles(input);
        assert_eq!(out, want);
        assert!(kept.is_empty());
    }

    #[test]
    fn statement_shapes() {
        let input = "\
CREATE ROLE \"supabase_read_only_user\";
CREATE ROLE app_owner;
CREATE USER \"Mixed Case\";
ALTER ROLE \"service_role\" IN DATABASE \"postgres\" SET \"search_path\" TO 'x';
ALTER ROLE \"app_owner\" IN DATABASE \"postgres\" SET \"search_path\" TO 'x';
ALTER ROLE ALL SET \"work_mem\" TO '4MB';
SECURITY LABEL FOR \"dummy\" ON ROLE \"anon\" IS 'secret';
SECURITY LABEL ON ROLE \"app_owner\" IS 'label';
COMMENT ON ROLE \"pg_monitor\" IS E'it''s \\' ; tricky\\\\';
COMMENT ON ROLE \"app_owner\" IS $x$multi;
line $ not end$x$;
DROP ROLE IF EXISTS \"postgres\";
DROP ROLE IF EXISTS \"app_owner\";
CREATE ROLE \"anon\"; CREATE ROLE \"keep_me\"; -- trailing comment
CREATE ROLE \"anon\"; /* both dropped */ CREATE ROLE \"authenticated\";
/* block comment line */
   -- indented comment
SET search_path = '';
";
        let want = "\
DO $supabackup$ BEGIN CREATE ROLE app_owner; EXCEPTION WHEN duplicate_object THEN NULL; END $supabackup$;
DO $supabackup$ BEGIN CREATE USER \"Mixed Case\"; EXCEPTION WHEN duplicate_object THEN NULL; END $supabackup$;
ALTER ROLE \"app_owner\" IN DATABASE \"postgres\" SET \"search_path\" TO 'x';
ALTER ROLE ALL SET \"work_mem\" TO '4MB';
SECURITY LABEL ON ROLE \"app_owner\" IS 'label';
COMMENT ON ROLE \"app_owner\" IS $x$multi;
line $ not end$x$;
DROP ROLE IF EXISTS \"app_owner\";
 DO $supabackup$ BEGIN CREATE ROLE \"keep_me\"; EXCEPTION WHEN duplicate_object THEN NULL; END $supabackup$; -- trailing comment
/* block comment line */
   -- indented comment
SET search_path = '';
";
        let (out, kept) = filter_roles(input);
        assert_eq!(out, want);
        assert_eq!(
            kept,
            ["app_owner", "Mixed Case", "keep_me"].map(String::from)
        );
        for size in [1usize, 2, 5] {
            let (out, _) = run_chunked(input.as_bytes(), &mut || size);
            assert_eq!(String::from_utf8(out).ok().as_deref(), Some(want), "{size}");
        }
    }

    #[test]
    fn unicode_split_across_chunks() {
        let input = "CREATE ROLE \"rôle_é\";\nCOMMENT ON ROLE \"rôle_é\" IS '日本;\n✓';\nCREATE ROLE \"anon\";\nGRANT \"anon\" TO \"rôle_é\" GRANTED BY \"supabase_admin\";\n";
        let want = "DO $supabackup$ BEGIN CREATE ROLE \"rôle_é\"; EXCEPTION WHEN duplicate_object THEN NULL; END $supabackup$;\nCOMMENT ON ROLE \"rôle_é\" IS '日本;\n✓';\nGRANT \"anon\" TO \"rôle_é\";\n";
        for size in [1usize, 2, 3] {
            let (out, kept) = run_chunked(input.as_bytes(), &mut || size);
            assert_eq!(String::from_utf8(out).ok().as_deref(), Some(want));
            assert_eq!(kept, ["rôle_é".to_string()]);
        }
    }

    #[test]
    fn truncated_input_is_still_judged() {
        let (out, kept) = filter_roles("CREATE ROLE \"a\";\nCREATE ROLE \"postgres\"");
        assert_eq!(
            out,
            "DO $supabackup$ BEGIN CREATE ROLE \"a\"; EXCEPTION WHEN duplicate_object THEN NULL; END $supabackup$;\n"
        );
        assert_eq!(kept, ["a".to_string()]);
        let (out, _) = filter_roles("CREATE ROLE \"a\";\nCOMMENT ON ROLE \"a\" IS 'open");
        assert_eq!(
            out,
            "DO $supabackup$ BEGIN CREATE ROLE \"a\"; EXCEPTION WHEN duplicate_object THEN NULL; END $supabackup$;\nCOMMENT ON ROLE \"a\" IS 'open"
        );
        let (out, _) = filter_roles("--\n-- no newline at end");
        assert_eq!(out, "--\n-- no newline at end");
    }
}
