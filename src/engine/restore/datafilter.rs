//! Picking tables out of `data.sql`, exactly. A data-only pg_dump is a
//! sequence of one-line statements (SET, setval, comments, psql's
//! `\restrict`) and `COPY "s"."t" (...) FROM stdin;` blocks whose data lines
//! escape every newline and end at a line `\.`; supabackup adds one-line
//! statements before and after. So a line-by-line walk knows at every line
//! whether it is a statement or data, and keeps or skips whole blocks.
//!
//! The same walk shares data.sql among the sessions of a parallel load
//! ([`Share`]): each session reads the whole file and keeps the blocks of
//! its own tables, every session gets the session settings, and the other
//! statements (sequence values, large objects) go to the first one.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};

use crate::engine::backup::tap::{parse_copy_target, parse_ident};
use crate::engine::error::{Error, Result};

/// Which parts of data.sql to keep.
#[derive(Debug, Clone, Default)]
pub struct DataSelection {
    /// Keep everything in these schemas (tables, sequences, matview refreshes).
    pub schemas: HashSet<String>,
    /// Keep these tables' rows, as (schema, table).
    pub tables: HashSet<(String, String)>,
    /// Keep these sequences' values, as (schema, sequence).
    pub sequences: HashSet<(String, String)>,
}

impl DataSelection {
    fn table(&self, schema: &str, name: &str) -> bool {
        self.schemas.contains(schema) || self.tables.contains(&(schema.to_owned(), name.to_owned()))
    }
    fn sequence(&self, schema: &str, name: &str) -> bool {
        self.schemas.contains(schema)
            || self
                .sequences
                .contains(&(schema.to_owned(), name.to_owned()))
    }
}

/// One session's part of data.sql in a parallel load.
#[derive(Debug, Clone)]
pub struct Share {
    /// This session's number, from 0.
    pub session: usize,
    pub sessions: usize,
    /// Which session loads a table, as (schema, table); others by a hash
    /// of the name.
    pub owner: HashMap<(String, String), usize>,
}

impl Share {
    /// Tables spread over `sessions` by rows, largest first, each to the
    /// session with the fewest rows so far.
    pub fn plan(
        tables: &[(String, String, u64)],
        sessions: usize,
    ) -> HashMap<(String, String), usize> {
        let mut order: Vec<&(String, String, u64)> = tables.iter().collect();
        order.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
        let mut load = vec![0u64; sessions.max(1)];
        let mut owner = HashMap::new();
        for (s, t, rows) in order {
            let (i, _) = load
                .iter()
                .enumerate()
                .min_by_key(|(i, l)| (**l, *i))
                .unwrap_or((0, &0));
            load[i] += rows.max(&1);
            owner.insert((s.clone(), t.clone()), i);
        }
        owner
    }

    fn owns_table(&self, schema: &str, name: &str) -> bool {
        let key = (schema.to_owned(), name.to_owned());
        let owner = self.owner.get(&key).copied().unwrap_or_else(|| {
            // Deterministic in every session (FNV-1a).
            let h = schema
                .bytes()
                .chain([0])
                .chain(name.bytes())
                .fold(0xcbf29ce484222325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
                });
            (h % self.sessions.max(1) as u64) as usize
        });
        owner == self.session
    }

    /// Whether a statement line outside COPY blocks goes to this session:
    /// settings, psql's `\restrict` pair, comments and blank lines go to
    /// all; anything else to the first.
    fn owns_statement(&self, line: &[u8]) -> bool {
        let everyone = line.is_empty()
            || line.starts_with(b"SET ")
            || line.starts_with(b"SELECT pg_catalog.set_config(")
            || line.starts_with(b"\\")
            || line.starts_with(b"--");
        everyone || self.session == 0
    }
}

/// `"s"."n"` → (s, n).
fn qualified(s: &[u8]) -> Option<(String, String)> {
    let (first, rest) = parse_ident(s)?;
    let (second, _) = parse_ident(rest.strip_prefix(b".")?)?;
    Some((first, second))
}

/// What a statement line is about, when it is about an object.
fn statement_object(line: &[u8]) -> Option<(&'static str, String, String)> {
    if let Some(rest) = line.strip_prefix(b"SELECT pg_catalog.setval('") {
        let (s, n) = qualified(rest)?;
        return Some(("sequence", s, n));
    }
    if let Some(rest) = line.strip_prefix(b"REFRESH MATERIALIZED VIEW ") {
        let (s, n) = qualified(rest)?;
        return Some(("matview", s, n));
    }
    None
}

/// Copies the selected parts of `input` (plain data.sql) to `out` — all
/// of it without a selection — or, with a share, this session's part of
/// them; returns the tables whose rows were selected (in every session).
pub fn filter_data(
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    sel: Option<&DataSelection>,
    share: Option<&Share>,
) -> Result<Vec<(String, String)>> {
    let mut line = Vec::with_capacity(64 * 1024);
    let mut in_copy: Option<bool> = None; // Some(keep) inside a COPY block
    let mut kept = Vec::new();
    let io = |e: std::io::Error| Error::corrupt(format!("reading data.sql failed: {e}"));
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line).map_err(io)?;
        if n == 0 {
            break;
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let keep = match in_copy {
            Some(keep) => {
                if body == b"\\." {
                    in_copy = None;
                }
                keep
            }
            None => {
                if let Some(target) = body.strip_prefix(b"COPY ") {
                    let (schema, name) = parse_copy_target(target);
                    let selected = sel.is_none_or(|sel| sel.table(&schema, &name));
                    let keep = selected && share.is_none_or(|sh| sh.owns_table(&schema, &name));
                    if selected {
                        kept.push((schema, name));
                    }
                    in_copy = Some(keep);
                    keep
                } else {
                    let selected = match (sel, statement_object(body)) {
                        (None, _) | (_, None) => true,
                        (Some(sel), Some(("sequence", s, n))) => sel.sequence(&s, &n),
                        (Some(sel), Some((_, s, _))) => sel.schemas.contains(&s),
                    };
                    selected && share.is_none_or(|sh| sh.owns_statement(body))
                }
            }
        };
        if keep {
            out.write_all(&line).map_err(|e| {
                Error::new(
                    crate::engine::error::ErrorKind::Io,
                    format!("sending data to psql failed: {e}"),
                )
            })?;
        }
    }
    if in_copy.is_some() {
        return Err(Error::corrupt(
            "data.sql ends inside a COPY block (truncated)",
        ));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = "SET session_replication_role = replica;\n\
SET statement_timeout = 0;\n\
COPY \"public\".\"a\" (\"id\", \"t\") FROM stdin;\n\
1\tCOPY \"public\".\"b\" (x) FROM stdin;\n\
2\t\\\\.\n\
\\.\n\
COPY \"public\".\"b\" (\"id\") FROM stdin;\n\
7\n\
\\.\n\
COPY \"billing\".\"inv\"\"x\" (\"id\") FROM stdin;\n\
9\n\
\\.\n\
SELECT pg_catalog.setval('\"public\".\"a_id_seq\"', 2, true);\n\
SELECT pg_catalog.setval('\"billing\".\"inv_id_seq\"', 9, true);\n\
REFRESH MATERIALIZED VIEW \"public\".\"mv\";\n\
-- supabackup data dump complete\n";

    fn run(sel: &DataSelection) -> (String, Vec<(String, String)>) {
        run_share(Some(sel), None)
    }

    fn run_share(
        sel: Option<&DataSelection>,
        share: Option<&Share>,
    ) -> (String, Vec<(String, String)>) {
        let mut out = Vec::new();
        let kept = filter_data(&mut DATA.as_bytes(), &mut out, sel, share).expect("filter");
        (String::from_utf8(out).expect("utf8"), kept)
    }

    #[test]
    fn keeps_whole_blocks_of_selected_tables_only() {
        let mut sel = DataSelection::default();
        sel.tables.insert(("public".into(), "a".into()));
        sel.sequences.insert(("public".into(), "a_id_seq".into()));
        let (out, kept) = run(&sel);
        assert_eq!(kept, [("public".to_string(), "a".to_string())]);
        // Data lines that look like statements stay data.
        assert!(out.contains("1\tCOPY \"public\".\"b\" (x) FROM stdin;\n2\t\\\\.\n\\.\n"));
        assert!(!out.contains("7\n") && !out.contains("9\n"));
        assert!(out.contains("setval('\"public\".\"a_id_seq\"'"));
        assert!(!out.contains("inv_id_seq") && !out.contains("REFRESH"));
        assert!(out.starts_with("SET session_replication_role = replica;\n"));
        assert!(out.ends_with("-- supabackup data dump complete\n"));
    }

    #[test]
    fn schema_selection_and_quoted_names() {
        let mut sel = DataSelection::default();
        sel.schemas.insert("billing".into());
        let (out, kept) = run(&sel);
        assert_eq!(kept, [("billing".to_string(), "inv\"x".to_string())]);
        assert!(out.contains("9\n") && out.contains("inv_id_seq") && !out.contains("a_id_seq"));
        let mut sel = DataSelection::default();
        sel.schemas.insert("public".into());
        let (out, _) = run(&sel);
        assert!(out.contains("REFRESH MATERIALIZED VIEW \"public\".\"mv\";"));
    }

    #[test]
    fn a_truncated_block_is_an_error() {
        let cut = &DATA[..DATA.find("7\n").expect("row") + 2];
        let mut sel = DataSelection::default();
        sel.schemas.insert("public".into());
        let err = filter_data(&mut cut.as_bytes(), &mut Vec::new(), Some(&sel), None)
            .expect_err("truncated");
        assert!(err.message.contains("truncated"));
    }

    #[test]
    fn shares_give_each_block_to_one_session_and_settings_to_all() {
        let tables = [
            ("public".to_string(), "a".to_string(), 1000),
            ("public".to_string(), "b".to_string(), 10),
            ("billing".to_string(), "inv\"x".to_string(), 500),
        ];
        let owner = Share::plan(&tables, 2);
        assert_eq!(owner[&("public".into(), "a".into())], 0);
        assert_eq!(owner[&("billing".into(), "inv\"x".into())], 1);
        assert_eq!(owner[&("public".into(), "b".into())], 1);
        let (whole, _) = run_share(None, None);
        assert_eq!(whole, DATA);
        let parts: Vec<String> = (0..2)
            .map(|session| {
                let share = Share {
                    session,
                    sessions: 2,
                    owner: owner.clone(),
                };
                let (out, kept) = run_share(None, Some(&share));
                assert_eq!(kept.len(), 3, "every session walks every block");
                out
            })
            .collect();
        for p in &parts {
            assert!(p.starts_with(
                "SET session_replication_role = replica;\nSET statement_timeout = 0;\n"
            ));
            assert!(p.ends_with("-- supabackup data dump complete\n"));
        }
        assert!(parts[0].contains("1\tCOPY \"public\".\"b\" (x) FROM stdin;\n2\t\\\\.\n\\.\n"));
        assert!(!parts[0].contains("7\n") && !parts[0].contains("9\n"));
        assert!(parts[1].contains("7\n") && parts[1].contains("9\n") && !parts[1].contains("1\t"));
        // Sequence values and other statements run once, in the first session.
        assert!(parts[0].contains("a_id_seq") && parts[0].contains("inv_id_seq"));
        assert!(!parts[1].contains("setval") && !parts[1].contains("REFRESH"));
        // Every data line of the whole is in exactly one part.
        let rows = |s: &str| {
            s.lines()
                .filter(|l| l.contains('\t') || *l == "7" || *l == "9")
                .count()
        };
        assert_eq!(rows(&parts[0]) + rows(&parts[1]), rows(DATA));
    }
}
