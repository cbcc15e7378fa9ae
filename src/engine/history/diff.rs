//! The difference between two backups, from their own files: schema
//! objects (pg_dump's `-- Name: …; Type: …` sections of schema.sql, with a
//! unified diff of each changed definition), rows per table (data.sql's
//! COPY blocks, keyed by the table's primary key, counted in an on-disk
//! SQLite file so memory does not grow with the tables) and roles.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::engine::error::{Error, Result};

/// One object of schema.sql.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaObject {
    pub kind: String,
    pub schema: String,
    pub name: String,
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    pub schema: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangedObject {
    pub kind: String,
    pub schema: String,
    pub name: String,
    /// Unified diff of the definition, old → new.
    pub diff: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SchemaDiff {
    pub added: Vec<ObjectRef>,
    pub removed: Vec<ObjectRef>,
    pub changed: Vec<ChangedObject>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableDiff {
    /// `schema.table` (quoted only where a name needs it).
    pub table: String,
    pub rows_a: u64,
    pub rows_b: u64,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    /// Rows are matched by primary key (else as whole rows: an update
    /// counts as one removed and one added).
    pub keyed: bool,
    /// A few primary keys of changed rows (tab-separated columns).
    pub changed_keys: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RolesDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

/// Splits schema.sql into its objects. Text before the first header (the
/// SET preamble) belongs to no object.
pub fn parse_schema(r: impl Read) -> Result<Vec<SchemaObject>> {
    let mut out: Vec<SchemaObject> = Vec::new();
    let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
    let mut cur: Option<SchemaObject> = None;
    for line in BufReader::new(r).lines() {
        let line = line.map_err(|e| Error::corrupt(format!("schema.sql is unreadable: {e}")))?;
        if let Some(rest) = line.strip_prefix("-- Name: ")
            && let Some((kind, schema, name)) = header(rest)
        {
            if let Some(o) = cur.take() {
                out.push(finish(o));
            }
            let key = (kind.clone(), schema.clone(), name.clone());
            let n = seen.entry(key).or_insert(0);
            *n += 1;
            let name = if *n > 1 { format!("{name} #{n}") } else { name };
            cur = Some(SchemaObject {
                kind,
                schema,
                name,
                definition: String::new(),
            });
            continue;
        }
        if let Some(o) = cur.as_mut() {
            // pg_dump frames each header with bare `--` lines; session
            // settings, psql's \restrict guard (a random key per dump) and
            // the closing comment belong to no object.
            if line == "--" || is_noise(&line) {
                continue;
            }
            o.definition.push_str(&line);
            o.definition.push('\n');
        }
    }
    if let Some(o) = cur.take() {
        out.push(finish(o));
    }
    Ok(out)
}

fn is_noise(line: &str) -> bool {
    line.starts_with("\\restrict ")
        || line.starts_with("\\unrestrict ")
        || line.starts_with("-- PostgreSQL database dump complete")
        || line.starts_with("SELECT pg_catalog.set_config(")
        || (line.starts_with("SET ") && line.ends_with(';') && !line.contains('('))
}

fn finish(mut o: SchemaObject) -> SchemaObject {
    o.definition = o.definition.trim().to_owned();
    o.definition.push('\n');
    o
}

/// `X; Type: T; Schema: S; Owner: O` → (T, S, X).
fn header(rest: &str) -> Option<(String, String, String)> {
    let t = rest.rfind("; Type: ")?;
    let name = &rest[..t];
    let after = &rest[t + "; Type: ".len()..];
    let s = after.find("; Schema: ")?;
    let kind = &after[..s];
    let tail = &after[s + "; Schema: ".len()..];
    let schema = tail.split("; Owner: ").next().unwrap_or(tail);
    Some((kind.to_owned(), schema.to_owned(), name.to_owned()))
}

fn unified(old: &str, new: &str, label: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{label}"), &format!("b/{label}"))
        .to_string()
}

pub fn diff_schema(a: &[SchemaObject], b: &[SchemaObject]) -> SchemaDiff {
    let key = |o: &SchemaObject| (o.kind.clone(), o.schema.clone(), o.name.clone());
    let am: BTreeMap<_, &SchemaObject> = a.iter().map(|o| (key(o), o)).collect();
    let bm: BTreeMap<_, &SchemaObject> = b.iter().map(|o| (key(o), o)).collect();
    let mut d = SchemaDiff::default();
    let r = |(k, s, n): &(String, String, String)| ObjectRef {
        kind: k.clone(),
        schema: s.clone(),
        name: n.clone(),
    };
    for (k, o) in &am {
        match bm.get(k) {
            None => d.removed.push(r(k)),
            Some(n) if n.definition != o.definition => d.changed.push(ChangedObject {
                kind: k.0.clone(),
                schema: k.1.clone(),
                name: k.2.clone(),
                diff: unified(
                    &o.definition,
                    &n.definition,
                    &format!("{} {}.{}", k.0, k.1, k.2),
                ),
            }),
            Some(_) => {}
        }
    }
    for k in bm.keys() {
        if !am.contains_key(k) {
            d.added.push(r(k));
        }
    }
    d
}

/// Primary-key columns per table, from the schema's constraints:
/// `ALTER TABLE [ONLY] t ADD CONSTRAINT c PRIMARY KEY (a, b);`.
pub fn primary_keys(objects: &[SchemaObject]) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    for o in objects.iter().filter(|o| o.kind == "CONSTRAINT") {
        let text = o.definition.replace('\n', " ");
        let Some(p) = text.find(" PRIMARY KEY (") else {
            continue;
        };
        let cols_start = p + " PRIMARY KEY (".len();
        let Some(close) = text[cols_start..].find(')') else {
            continue;
        };
        let cols: Vec<String> = split_columns(&text[cols_start..cols_start + close]);
        let Some(rest) = text.strip_prefix("ALTER TABLE ") else {
            continue;
        };
        let rest = rest.strip_prefix("ONLY ").unwrap_or(rest);
        let Some(table) = rest.split(" ADD CONSTRAINT ").next() else {
            continue;
        };
        out.insert(table.trim().to_owned(), cols);
    }
    out
}

/// `a, "b c", d` → [a, "b c", d] (quoted names keep their quotes, as in
/// COPY headers).
fn split_columns(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in list.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                cur.push(ch);
            }
            ',' if !quoted => {
                out.push(cur.trim().to_owned());
                cur.clear();
            }
            _ => cur.push(ch),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

/// `COPY t (a, b) FROM stdin;` → (t, [a, b]).
fn copy_header(line: &str) -> Option<(String, Vec<String>)> {
    let rest = line.strip_prefix("COPY ")?.strip_suffix(" FROM stdin;")?;
    match rest.find(" (") {
        Some(open) if rest.ends_with(')') => Some((
            rest[..open].to_owned(),
            split_columns(&rest[open + 2..rest.len() - 1]),
        )),
        _ => Some((rest.to_owned(), Vec::new())),
    }
}

/// Counts rows of two data.sql streams into an on-disk table and compares
/// them per table.
pub struct DataDiffer {
    conn: Connection,
    tables: HashMap<String, i64>,
    rows: HashMap<(i64, u8), u64>,
}

fn db_err(e: rusqlite::Error) -> Error {
    Error::internal(format!("the diff's work file failed: {e}"))
}

impl DataDiffer {
    /// Works in a SQLite file at `path` (deleted by the caller).
    pub fn new(path: &Path) -> Result<DataDiffer> {
        let conn = Connection::open(path).map_err(db_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
             CREATE TABLE rows (side INTEGER NOT NULL, tbl INTEGER NOT NULL, key BLOB NOT NULL,
                                hash BLOB NOT NULL, n INTEGER NOT NULL,
                                PRIMARY KEY (side, tbl, key)) WITHOUT ROWID;",
        )
        .map_err(db_err)?;
        Ok(DataDiffer {
            conn,
            tables: HashMap::new(),
            rows: HashMap::new(),
        })
    }

    /// Reads one side's data.sql. `skip` names tables known to be equal on
    /// both sides (their rows are only counted).
    pub fn load(
        &mut self,
        side: u8,
        data: impl Read,
        keys: &HashMap<String, Vec<String>>,
        skip: &std::collections::HashSet<(String, String)>,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_err)?;
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO rows (side, tbl, key, hash, n) VALUES (?1, ?2, ?3, ?4, 1)
                     ON CONFLICT (side, tbl, key) DO UPDATE SET n = n + 1",
                )
                .map_err(db_err)?;
            let mut reader = BufReader::with_capacity(256 * 1024, data);
            let mut line = Vec::new();
            // (table id, key column positions, counted only)
            let mut block: Option<(i64, Option<Vec<usize>>, bool)> = None;
            let mut n = 0u64;
            loop {
                line.clear();
                let got = reader.read_until(b'\n', &mut line).map_err(|e| {
                    crate::engine::backup::crypt::error_from_io(e, "read", Path::new("data.sql"))
                })?;
                if got == 0 {
                    break;
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                n += 1;
                if n.is_multiple_of(65_536) && cancel.is_cancelled() {
                    return Err(Error::cancelled());
                }
                match &block {
                    None => {
                        let Ok(text) = std::str::from_utf8(&line) else {
                            continue;
                        };
                        if let Some((table, cols)) = copy_header(text) {
                            let next = self.tables.len() as i64;
                            let id = *self.tables.entry(table.clone()).or_insert(next);
                            let positions = keys.get(&table).and_then(|pk| {
                                pk.iter()
                                    .map(|c| cols.iter().position(|x| x == c))
                                    .collect::<Option<Vec<usize>>>()
                            });
                            self.rows.entry((id, side)).or_insert(0);
                            let plain =
                                crate::engine::backup::tap::parse_copy_target(table.as_bytes());
                            block = Some((id, positions, skip.contains(&plain)));
                        }
                    }
                    Some(_) if line == b"\\." => block = None,
                    Some((id, positions, counted_only)) => {
                        *self.rows.entry((*id, side)).or_insert(0) += 1;
                        if *counted_only {
                            continue;
                        }
                        let digest = blake3::hash(&line);
                        let hash = &digest.as_bytes()[..16];
                        let key: Vec<u8> = match positions {
                            Some(pos) => {
                                let fields: Vec<&[u8]> = line.split(|b| *b == b'\t').collect();
                                let mut k = Vec::new();
                                for (i, p) in pos.iter().enumerate() {
                                    if i > 0 {
                                        k.push(b'\t');
                                    }
                                    k.extend_from_slice(
                                        fields.get(*p).copied().unwrap_or_default(),
                                    );
                                }
                                k
                            }
                            None => hash.to_vec(),
                        };
                        ins.execute(params![i64::from(side), id, key, hash])
                            .map_err(db_err)?;
                    }
                }
            }
        }
        tx.commit().map_err(db_err)
    }

    /// Per table: rows added, removed, changed.
    /// `keys`: the tables whose rows were matched by primary key.
    pub fn finish(self, keys: &HashMap<String, Vec<String>>) -> Result<Vec<TableDiff>> {
        let mut out = Vec::new();
        let mut names: Vec<(&String, &i64)> = self.tables.iter().collect();
        names.sort();
        for (table, id) in names {
            let q = |sql: &str| -> Result<u64> {
                self.conn
                    .query_row(sql, [id], |r| r.get::<_, i64>(0))
                    .map(|v| v.max(0) as u64)
                    .map_err(db_err)
            };
            let added = q("SELECT COALESCE(SUM(CASE WHEN a.key IS NULL THEN b.n ELSE MAX(b.n - a.n, 0) END), 0)
                             FROM rows b LEFT JOIN rows a ON a.side = 0 AND a.tbl = b.tbl AND a.key = b.key
                            WHERE b.side = 1 AND b.tbl = ?1")?;
            let removed = q("SELECT COALESCE(SUM(CASE WHEN b.key IS NULL THEN a.n ELSE MAX(a.n - b.n, 0) END), 0)
                               FROM rows a LEFT JOIN rows b ON b.side = 1 AND b.tbl = a.tbl AND b.key = a.key
                              WHERE a.side = 0 AND a.tbl = ?1")?;
            let changed = q("SELECT COUNT(*) FROM rows a JOIN rows b
                               ON b.side = 1 AND b.tbl = a.tbl AND b.key = a.key
                            WHERE a.side = 0 AND a.tbl = ?1 AND a.hash <> b.hash")?;
            let is_keyed = keys.contains_key(table);
            let changed_keys = if is_keyed && changed > 0 {
                let mut s = self
                    .conn
                    .prepare(
                        "SELECT a.key FROM rows a JOIN rows b
                           ON b.side = 1 AND b.tbl = a.tbl AND b.key = a.key
                         WHERE a.side = 0 AND a.tbl = ?1 AND a.hash <> b.hash LIMIT 5",
                    )
                    .map_err(db_err)?;
                let rows = s
                    .query_map([id], |r| r.get::<_, Vec<u8>>(0))
                    .map_err(db_err)?;
                rows.filter_map(|r| r.ok())
                    .map(|k| String::from_utf8_lossy(&k).into_owned())
                    .collect()
            } else {
                Vec::new()
            };
            let (schema, name) = crate::engine::backup::tap::parse_copy_target(table.as_bytes());
            out.push(TableDiff {
                table: crate::engine::ident::render_table(&schema, &name),
                rows_a: self.rows.get(&(*id, 0)).copied().unwrap_or(0),
                rows_b: self.rows.get(&(*id, 1)).copied().unwrap_or(0),
                added,
                removed,
                changed,
                keyed: is_keyed,
                changed_keys,
            });
        }
        Ok(out)
    }
}

/// The role each line of roles.sql is about.
pub fn role_lines(r: impl Read) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in BufReader::new(r).lines() {
        let line = line.map_err(|e| Error::corrupt(format!("roles.sql is unreadable: {e}")))?;
        let role = if let Some(rest) = line
            .strip_prefix("CREATE ROLE ")
            .or_else(|| line.strip_prefix("ALTER ROLE "))
        {
            rest.split([' ', ';']).next().map(str::to_owned)
        } else if line.starts_with("GRANT ") {
            line.rsplit(" TO ")
                .next()
                .and_then(|t| t.split([' ', ';']).next())
                .map(str::to_owned)
        } else {
            None
        };
        if let Some(role) = role {
            out.entry(role).or_default().push(line);
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    Ok(out)
}

pub fn diff_roles(
    a: &BTreeMap<String, Vec<String>>,
    b: &BTreeMap<String, Vec<String>>,
) -> RolesDiff {
    let mut d = RolesDiff::default();
    for (k, v) in a {
        match b.get(k) {
            None => d.removed.push(k.clone()),
            Some(w) if w != v => d.changed.push(k.clone()),
            Some(_) => {}
        }
    }
    d.added = b.keys().filter(|k| !a.contains_key(*k)).cloned().collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "SET x = 1;\n\n--\n-- Name: t; Type: TABLE; Schema: public; Owner: postgres\n--\n\nCREATE TABLE public.t (\n    id integer NOT NULL,\n    v text\n);\n\n--\n-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres\n--\n\nALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);\n\n--\n-- Name: f(); Type: FUNCTION; Schema: public; Owner: postgres\n--\n\nCREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n";

    #[test]
    fn schema_sections_keys_and_changes() {
        let a = parse_schema(A.as_bytes()).expect("a");
        assert_eq!(a.len(), 3);
        assert_eq!(a[1].kind, "CONSTRAINT");
        assert_eq!(a[1].name, "t t_pkey");
        let keys = primary_keys(&a);
        assert_eq!(keys.get("public.t"), Some(&vec!["id".to_owned()]));
        let b_text = A
            .replace("'SELECT 1'", "'SELECT 2'")
            .replace("    v text\n", "    v text,\n    w int\n")
            + "\n--\n-- Name: u; Type: VIEW; Schema: public; Owner: postgres\n--\n\nCREATE VIEW public.u AS SELECT 1;\n";
        let b = parse_schema(b_text.as_bytes()).expect("b");
        let d = diff_schema(&a, &b);
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.added[0].name, "u");
        assert!(d.removed.is_empty());
        assert_eq!(d.changed.len(), 2, "{d:?}");
        assert!(
            d.changed.iter().any(|c| c.diff.contains("+    w int")),
            "{d:?}"
        );
        let d = diff_schema(&b, &a);
        assert_eq!(d.removed.len(), 1);
    }

    #[test]
    fn rows_by_key_and_by_content() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut d = DataDiffer::new(&dir.path().join("w.sqlite")).expect("differ");
        let keys: HashMap<String, Vec<String>> =
            [("public.t".to_owned(), vec!["id".to_owned()])].into();
        let none = Default::default();
        let c = tokio_util::sync::CancellationToken::new();
        let a = "COPY public.t (id, v) FROM stdin;\n1\ta\n2\tb\n3\tc\n\\.\nCOPY public.log (m) FROM stdin;\nx\nx\ny\n\\.\n";
        let b = "COPY public.t (id, v) FROM stdin;\n1\ta\n2\tB\n4\td\n5\te\n\\.\nCOPY public.log (m) FROM stdin;\nx\ny\nz\n\\.\n";
        d.load(0, a.as_bytes(), &keys, &none, &c).expect("a");
        d.load(1, b.as_bytes(), &keys, &none, &c).expect("b");
        let out = d.finish(&keys).expect("finish");
        let t = out.iter().find(|t| t.table == "public.t").expect("t");
        assert_eq!((t.added, t.removed, t.changed), (2, 1, 1), "{t:?}");
        assert_eq!(t.changed_keys, vec!["2".to_owned()]);
        let l = out.iter().find(|t| t.table == "public.log").expect("log");
        assert_eq!(
            (l.added, l.removed, l.changed, l.rows_a, l.rows_b),
            (1, 1, 0, 3, 3),
            "{l:?}"
        );
    }

    #[test]
    fn roles_by_name() {
        let a = role_lines(
            "CREATE ROLE app;\nALTER ROLE app WITH NOLOGIN;\nCREATE ROLE old;\n".as_bytes(),
        )
        .expect("a");
        let b = role_lines(
            "CREATE ROLE app;\nALTER ROLE app WITH LOGIN;\nCREATE ROLE new;\n".as_bytes(),
        )
        .expect("b");
        let d = diff_roles(&a, &b);
        assert_eq!(d.added, vec!["new"]);
        assert_eq!(d.removed, vec!["old"]);
        assert_eq!(d.changed, vec!["app"]);
    }
}
