//! The restore itself: one psql session, one transaction, in pg_restore's
//! order. BEGIN (its transaction id recorded, so a crash can later ask the
//! server whether it committed) → roles → the restoring role's default
//! privileges suspended where objects are created → target objects the
//! selection replaces dropped exactly → the replaced schemas emptied, with
//! a check that nothing outside them went → pre-data (types, tables,
//! functions, sequences) → rows (replica mode, so the platform's triggers
//! stay quiet) → post-data (indexes, constraints as they were, NOT VALID
//! ones too, foreign keys, triggers with their enable state, rules,
//! policies, publication members, event triggers, privileges) → migration
//! history → materialized views refreshed in dependency order → foreign
//! keys of partial data checked → every file's digests checked → COMMIT.
//! Anything failing before COMMIT leaves the target as it was.
//!
//! A parallel load (`--jobs`, parallel.rs) sends the same script over
//! several sessions; the pieces both use (sessions, pg_restore sections,
//! the end of the last transaction) live here.

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

use super::RestorePhase;
use super::datafilter::{DataSelection, Share, filter_data};
use super::guard::{Policy, SqlGuard};
use super::plan::{TargetState, quote};
use super::prepare::{Prepared, suspended_schemas};
use super::scope;
use super::verified::VerifiedBackup;
use crate::engine::Engine;
use crate::engine::backup::dump::{PassFile, ToolRun, feed, stream};
use crate::engine::backup::options::Artifact;
use crate::engine::conninfo::ConnInfo;
use crate::engine::error::{Error, ErrorKind, Result};
use crate::engine::failpoint;
use crate::engine::pg::archive;

/// Called with the target transaction's id once the session began it.
pub(crate) type XidSink = Box<dyn Fn(&str) -> Result<()> + Send + Sync>;

/// Counts what goes to psql.
struct Counting<'a> {
    inner: &'a mut dyn Write,
    count: Arc<AtomicU64>,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Sends through the guard; keeps the guard's own error.
struct Guarded<'a> {
    guard: SqlGuard,
    out: &'a mut dyn Write,
    failed: Option<Error>,
}

impl<'a> Guarded<'a> {
    fn new(name: &str, policy: Policy, out: &'a mut dyn Write) -> Self {
        Guarded {
            guard: SqlGuard::new(name, policy),
            out,
            failed: None,
        }
    }
    fn finish(mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.guard.finish(self.out)
    }
    /// The error behind a failed write or copy.
    fn error(&mut self, fallback: Error) -> Error {
        self.failed.take().unwrap_or(fallback)
    }
}

impl Write for Guarded<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.guard.push(buf, self.out) {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                self.failed = Some(e);
                Err(std::io::Error::other("refused"))
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(super) fn send(out: &mut dyn Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes()).map_err(|e| {
        Error::new(
            ErrorKind::Connection,
            format!("psql stopped reading its input: {e}"),
        )
    })
}

/// Streams a checked SQL file through the guard (data.sql through its
/// selection and this session's share, if any); its digests are checked
/// at its end.
pub(super) fn send_file(
    v: &VerifiedBackup,
    artifact: Artifact,
    policy: Policy,
    out: &mut dyn Write,
    data: Option<&DataSelection>,
    share: Option<&Share>,
) -> Result<Vec<(String, String)>> {
    let mut checked = v.open(artifact)?;
    let name = checked.name().to_owned();
    let mut loaded = Vec::new();
    {
        let mut g = Guarded::new(&name, policy, out);
        let mut reader = BufReader::with_capacity(256 * 1024, &mut checked);
        let r = match (data, share) {
            (None, None) => std::io::copy(&mut reader, &mut g)
                .map(|_| ())
                .map_err(|e| Error::corrupt(e.to_string())),
            _ => filter_data(&mut reader, &mut g, data, share).map(|l| loaded = l),
        };
        if let Err(e) = r {
            let fallback = if e.message.contains("psql stopped") {
                e
            } else {
                Error::corrupt(format!("reading {name} failed: {}", e.message))
            };
            return Err(g.error(fallback));
        }
        g.finish()?;
    }
    checked.finish()?;
    Ok(loaded)
}

fn objtype_keyword(t: &str) -> Option<&'static str> {
    match t {
        "r" => Some("TABLES"),
        "S" => Some("SEQUENCES"),
        "f" => Some("FUNCTIONS"),
        "T" => Some("TYPES"),
        _ => None,
    }
}

/// Statements that revoke the restoring role's default privileges in the
/// schemas whose objects the restore creates (the dump brings the source's).
fn suspend_default_acls(target: &TargetState, schemas: &BTreeSet<String>) -> String {
    let mut out = String::new();
    let mut seen = BTreeSet::new();
    for d in &target.default_acls {
        let Some(kw) = objtype_keyword(&d.objtype) else {
            continue;
        };
        if !schemas.contains(&d.schema) {
            continue;
        }
        let grantee = d
            .grantee
            .as_deref()
            .map(quote)
            .unwrap_or_else(|| "PUBLIC".into());
        let stmt = format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} REVOKE ALL ON {kw} FROM {grantee};\n",
            quote(&target.current_user),
            quote(&d.schema)
        );
        if seen.insert(stmt.clone()) {
            out.push_str(&stmt);
        }
    }
    out
}

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Checks every foreign key into or out of the loaded tables; fails the
/// transaction naming the first broken one.
pub(super) fn fk_check(tables: &[(String, String)]) -> String {
    if tables.is_empty() {
        return String::new();
    }
    let list: Vec<String> = tables
        .iter()
        .map(|(s, t)| sql_literal(&format!("{}.{}", quote(s), quote(t))))
        .collect();
    format!(
        "DO $supabackup$ DECLARE r record; bad bigint; BEGIN
  FOR r IN SELECT c.conname, c.conrelid::regclass AS child, c.confrelid::regclass AS parent,
             (SELECT string_agg('c.' || quote_ident(a.attname), ', ' ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(att, n)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att) AS ccols,
             (SELECT string_agg('c.' || quote_ident(a.attname) || ' IS NOT NULL', ' AND ' ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(att, n)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att) AS notnull,
             (SELECT string_agg('p.' || quote_ident(a.attname), ', ' ORDER BY k.n) FROM unnest(c.confkey) WITH ORDINALITY k(att, n)
                JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.att) AS pcols
           FROM pg_constraint c
           WHERE c.contype = 'f' AND c.convalidated
             AND (c.conrelid = ANY (ARRAY[{list}]::regclass[]) OR c.confrelid = ANY (ARRAY[{list}]::regclass[]))
  LOOP
    EXECUTE format('SELECT count(*) FROM %s c WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE (%s) = (%s))',
                   r.child, r.notnull, r.parent, r.pcols, r.ccols) INTO bad;
    IF bad > 0 THEN
      RAISE EXCEPTION 'foreign key % of % would be broken: % row(s) point to missing rows of %', r.conname, r.child, bad, r.parent;
    END IF;
  END LOOP;
END $supabackup$;\n",
        list = list.join(", ")
    )
}

/// An archive and the pg_restore list of its entries to run.
pub(super) type ArchiveList = (PathBuf, PathBuf);

/// Everything the session sends, decided before it starts.
pub(super) struct Script {
    pub preamble: String,
    pub roles: bool,
    pub before_ddl: String,
    pub archives: Vec<ArchiveList>,
    pub deletes: String,
    pub data: Option<(DataSelection, bool)>,
    pub history: bool,
    pub after: String,
    /// A parallel load's post-data: indexes and keys per session, then the rest.
    pub waves: Option<Waves>,
}

/// A parallel load's post-data in two waves: indexes and keys (one list
/// per session, each table's on one session), then everything else.
pub(super) struct Waves {
    pub indexes: Vec<Vec<ArchiveList>>,
    pub rest: Vec<ArchiveList>,
}

/// psql as every restore session runs it: no psqlrc, quiet, unaligned
/// tuples only, stopping at the first error.
fn psql_args() -> Vec<String> {
    ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        .map(String::from)
        .to_vec()
}

/// The connection every session of one restore opens.
pub(super) struct Conn<'a> {
    pub psql: &'a std::path::Path,
    pub pg_restore: &'a std::path::Path,
    pub info: &'a ConnInfo,
    pub passfile: Option<&'a std::path::Path>,
    pub sent: Arc<AtomicU64>,
}

impl Conn<'_> {
    /// One psql session fed by `producer` (its output counted); each line
    /// psql prints goes to `on_line`.
    pub fn session(
        &self,
        cancel: &CancellationToken,
        on_line: Box<dyn FnMut(&str) + Send>,
        producer: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let run = ToolRun {
            program: self.psql,
            args: psql_args(),
            info: self.info,
            passfile: self.passfile,
        };
        feed(&run, cancel, on_line, &mut |stdin| {
            let mut out = Counting {
                inner: stdin,
                count: self.sent.clone(),
            };
            producer(&mut out)
        })
    }

    /// pg_restore's script of one section of the listed archives, through
    /// the guard into `out`.
    pub fn pg_restore_section(
        &self,
        section: &str,
        archives: &[ArchiveList],
        cancel: &CancellationToken,
        out: &mut dyn Write,
    ) -> Result<()> {
        for (archive, list) in archives {
            let restore = ToolRun {
                program: self.pg_restore,
                args: vec![
                    format!("--section={section}"),
                    format!("--use-list={}", list.display()),
                    "--file=-".into(),
                    archive.display().to_string(),
                ],
                info: self.info,
                passfile: None,
            };
            let mut g = Guarded::new("pg_restore's output", Policy::Script, out);
            let r = stream(&restore, cancel, &mut |bytes| g.write_all(bytes));
            if let Err(e) = r {
                return Err(g.error(e));
            }
            g.finish()?;
        }
        Ok(())
    }
}

fn build_script(p: &Prepared) -> Result<Script> {
    let waves = if p.jobs > 1 {
        Some(super::parallel::waves(p, p.jobs)?)
    } else {
        None
    };
    let plan = &p.plan;
    let sel = &p.selection;
    let mut before = String::new();
    let creates_ddl = sel.keep.iter().any(|k| !k.is_empty());
    if creates_ddl {
        before.push_str(&suspend_default_acls(&p.state, &suspended_schemas(plan)));
    }
    for d in &sel.drops {
        before.push_str(&format!(
            "-- replaced or removed: {}\n",
            d.what.replace('\n', " ")
        ));
        before.push_str(&d.sql);
        if !d.sql.ends_with('\n') {
            before.push('\n');
        }
    }
    for s in &sel.acl_resets {
        before.push_str(&scope::reset_schema_acl(s));
    }
    // Emptying the scope, checked: nothing else may go.
    let mut emptied: Vec<String> = plan.replace_schemas.clone();
    let history_drop = plan.history || plan.drop_history;
    if history_drop {
        emptied.push("supabase_migrations".into());
    }
    if !emptied.is_empty() {
        let allowed: Vec<String> = p
            .dependents
            .iter()
            .filter(|d| d.accepted || d.recreated)
            .map(|d| d.object.clone())
            .collect();
        before.push_str(&scope::before_emptying(&emptied));
        before.push_str(&scope::empty_schemas(&plan.replace_schemas));
        if history_drop {
            before.push_str("DROP SCHEMA IF EXISTS \"supabase_migrations\" CASCADE;\n");
        }
        before.push_str(&scope::after_emptying(&emptied, &allowed));
    }
    // The archives' entries to run, as pg_restore lists.
    let mut archives = Vec::new();
    for (i, a) in p.archives.iter().enumerate() {
        let keep = &sel.keep[i];
        if !a
            .toc
            .entries
            .iter()
            .any(|e| keep.contains(&e.dump_id) && !e.is_setting())
        {
            continue;
        }
        let list = archive::list_file(a.toc.entries.iter().filter(|e| keep.contains(&e.dump_id)));
        let path = a.path.with_extension("list");
        std::fs::write(&path, list).map_err(|e| Error::io("write", &path, e))?;
        archives.push((a.path.clone(), path));
    }
    let mut deletes = String::new();
    if !plan.replace_tables.is_empty() {
        deletes.push_str("SET session_replication_role = replica;\n");
        for (s, t) in &plan.replace_tables {
            deletes.push_str(&format!("DELETE FROM {}.{};\n", quote(s), quote(t)));
        }
    }
    let partial = plan.partial_data;
    let data = plan.data.clone().map(|d| (d, partial));
    // After the data: materialized views that held data, in dependency order.
    let mut after = String::from("\nSET session_replication_role = DEFAULT;\n");
    if let Some(d) = &plan.data {
        let exists = |schema: &str, name: &str| {
            p.archives.iter().zip(&sel.keep).any(|(a, keep)| {
                a.toc.entries.iter().any(|e| {
                    e.desc == "MATERIALIZED VIEW"
                        && keep.contains(&e.dump_id)
                        && e.namespace.as_deref() == Some(schema)
                        && e.tag == name
                })
            }) || p
                .state
                .objects
                .iter()
                .any(|o| o.kind == "materialized view" && o.schema == schema && o.name == name)
        };
        for mv in &p.verified.manifest.matviews {
            let in_scope = d.schemas.contains(&mv.schema);
            if mv.populated && in_scope && exists(&mv.schema, &mv.name) {
                after.push_str(&format!(
                    "REFRESH MATERIALIZED VIEW {}.{};\n",
                    quote(&mv.schema),
                    quote(&mv.name)
                ));
            }
        }
    }
    Ok(Script {
        preamble: "BEGIN;\nSET client_min_messages = warning;\nSELECT 'supabackup-xid:' || txid_current();\n"
            .into(),
        roles: plan.roles,
        before_ddl: before,
        archives,
        deletes,
        data,
        history: plan.history,
        after,
        waves,
    })
}

/// psql's output lines that carry the transaction id go to `tx`.
pub(super) fn xid_lines(tx: std::sync::mpsc::Sender<String>) -> Box<dyn FnMut(&str) + Send> {
    Box::new(move |line: &str| {
        if let Some(x) = line.strip_prefix("supabackup-xid:") {
            let _ = tx.send(x.trim().to_owned());
        }
    })
}

/// Sends what is buffered, then waits for the session's transaction id
/// (the preamble asks for it) and records it.
pub(super) fn began(
    out: &mut dyn Write,
    rx: &std::sync::mpsc::Receiver<String>,
    on_xid: &XidSink,
) -> Result<()> {
    out.flush()
        .map_err(|e| Error::connection(format!("psql stopped reading its input: {e}")))?;
    let xid = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .map_err(|_| {
            Error::connection("psql stopped reading its input before the transaction began")
        })?;
    on_xid(&xid)?;
    failpoint::pause("restore.began");
    Ok(())
}

/// The end of a restore's last transaction: migration history,
/// materialized views, the foreign keys of partial data, COMMIT.
pub(super) fn finish(
    v: &VerifiedBackup,
    script: &Script,
    loaded: &[(String, String)],
    out: &mut dyn Write,
) -> Result<()> {
    if script.history {
        send_file(v, Artifact::History, Policy::Script, out, None, None)?;
    }
    send(out, &script.after)?;
    if script.data.as_ref().is_some_and(|(_, partial)| *partial) {
        send(out, &fk_check(loaded))?;
    }
    failpoint::pause("restore.before_commit");
    send(out, "COMMIT;\n")
}

/// Rows per table in the backup, for sharing tables among sessions.
fn table_rows(tables: &[crate::engine::backup::tap::TableStat]) -> Vec<(String, String, u64)> {
    let mut rows: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for t in tables {
        *rows.entry((t.schema.clone(), t.name.clone())).or_default() += t.rows;
    }
    rows.into_iter().map(|((s, n), r)| (s, n, r)).collect()
}

impl Engine {
    /// Runs a prepared restore into `info`: in one transaction, or on
    /// `p.jobs` connections (parallel.rs). `changed` turns true once
    /// something committed (only a parallel load commits before its end).
    pub(crate) async fn load(
        &self,
        p: &Prepared,
        info: &ConnInfo,
        on_xid: XidSink,
        changed: Arc<AtomicBool>,
        report: &(dyn Fn(RestorePhase, u64, u64) + Sync),
        cancel: CancellationToken,
    ) -> Result<()> {
        let script = build_script(p)?;
        let m = &p.verified.manifest;
        let total: u64 = m
            .files
            .iter()
            .filter(|f| match f.artifact {
                Artifact::Roles => script.roles,
                Artifact::Schema => !script.archives.is_empty(),
                Artifact::Data => script.data.is_some(),
                Artifact::History => script.history,
                _ => false,
            })
            .map(|f| f.plain_size)
            .sum();
        let sent = Arc::new(AtomicU64::new(0));
        let done = CancellationToken::new();
        let ticker = {
            let sent = sent.clone();
            let done = done.clone();
            async move {
                let mut t = tokio::time::interval(std::time::Duration::from_millis(250));
                loop {
                    tokio::select! {
                        _ = t.tick() => report(RestorePhase::Loading, sent.load(Ordering::Relaxed), total),
                        _ = done.cancelled() => break,
                    }
                }
            }
        };
        let verified = p.verified.clone();
        let info = info.clone();
        let psql = p.tools.psql.clone();
        let pg_restore = p.tools.pg_restore.clone();
        let passfile_path = p.work.path().join(".pgpass");
        let jobs = p.jobs;
        let rows = table_rows(&m.tables);
        let job = tokio::task::spawn_blocking(move || -> Result<()> {
            let passfile = PassFile::create(&passfile_path, &info)?;
            let conn = Conn {
                psql: &psql,
                pg_restore: &pg_restore,
                info: &info,
                passfile: passfile.as_ref().map(|p| p.path()),
                sent,
            };
            if jobs > 1 {
                return super::parallel::run(
                    &conn, &script, &verified, jobs, &rows, &cancel, &on_xid, &changed,
                );
            }
            let (xid_tx, xid_rx) = std::sync::mpsc::channel::<String>();
            conn.session(&cancel, xid_lines(xid_tx), &mut |out| {
                send(out, &script.preamble)?;
                began(out, &xid_rx, &on_xid)?;
                if script.roles {
                    send_file(&verified, Artifact::Roles, Policy::Script, out, None, None)?;
                }
                send(out, &script.before_ddl)?;
                failpoint::pause("restore.emptied");
                conn.pg_restore_section("pre-data", &script.archives, &cancel, out)?;
                failpoint::pause("restore.pre_data");
                send(out, &script.deletes)?;
                let mut loaded = Vec::new();
                if let Some((sel, partial)) = &script.data {
                    loaded = send_file(
                        &verified,
                        Artifact::Data,
                        Policy::Data,
                        out,
                        partial.then_some(sel),
                        None,
                    )?;
                }
                failpoint::pause("restore.data");
                conn.pg_restore_section("post-data", &script.archives, &cancel, out)?;
                failpoint::pause("restore.post_data");
                finish(&verified, &script, &loaded, out)
            })
        });
        let (result, _) = tokio::join!(
            async {
                let r = job.await;
                done.cancel();
                r
            },
            ticker
        );
        result.map_err(|e| Error::internal(format!("the restore task failed: {e}")))?
    }
}
