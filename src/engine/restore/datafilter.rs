//! Picking tables out of `data.sql`, exactly. A data-only pg_dump is a
//! sequence of one-line statements (SET, setval, comments, psql's
//! `\restrict`) and `COPY "s"."t" (...) FROM stdin;` blocks whose data lines
//! escape every newline and end at a line `\.`; supabackup adds one-line
//! statements before and after. So a line-by-line walk knows at every line
//! whether it is a statement or data, and keeps or skips whole blocks.

use std::collections::HashSet;
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

/// Copies the selected parts of `input` (plain data.sql) to `out`; returns
/// the tables whose rows were kept.
pub fn filter_data(
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    sel: &DataSelection,
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
                    let keep = sel.table(&schema, &name);
                    if keep {
                        kept.push((schema, name));
                    }
                    in_copy = Some(keep);
                    keep
                } else {
                    match statement_object(body) {
                        Some(("sequence", s, n)) => sel.sequence(&s, &n),
                        Some((_, s, _)) => sel.schemas.contains(&s),
                        None => true,
                    }
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
        let mut out = Vec::new();
        let kept = filter_data(&mut DATA.as_bytes(), &mut out, sel).expect("filter");
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
        let err = filter_data(&mut cut.as_bytes(), &mut Vec::new(), &sel).expect_err("truncated");
        assert!(err.message.contains("truncated"));
    }
}
