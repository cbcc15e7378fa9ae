//! The parallel load: the same statements as the one-transaction restore
//! (load.rs), sent on several connections so rows load and indexes build
//! side by side, as `pg_restore --jobs` does. It runs in four steps:
//!
//! 1. one transaction: roles, what replace mode drops, pre-data (types,
//!    tables, functions), the replaced tables emptied — COMMIT;
//! 2. rows, one transaction per session: each session reads the whole of
//!    data.sql (its digests checked by every session) and loads the COPY
//!    blocks of its tables (largest first, spread by rows); settings go to
//!    all, sequence values and large objects to the first (datafilter.rs);
//! 3. indexes and primary/unique keys, each session building those of its
//!    tables (a table and its partitions on one session, so no two
//!    sessions wait on each other's locks), statement by statement;
//! 4. one transaction: the rest of post-data (foreign keys, triggers,
//!    policies, privileges, …), migration history, materialized views,
//!    the foreign keys of partial data — COMMIT.
//!
//! What that costs: after step 1 the target has changed, so a failure or
//! a cancel later leaves it partly restored (the restore's record says so;
//! the safety snapshot taken before step 1 is the way back, by rollback).
//! Step 1's transaction id is the one recorded for crash recovery.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

use super::datafilter::Share;
use super::guard::Policy;
use super::load::{
    ArchiveList, Conn, Script, Waves, XidSink, began, finish, send, send_file, xid_lines,
};
use super::prepare::Prepared;
use super::verified::VerifiedBackup;
use crate::engine::backup::options::Artifact;
use crate::engine::error::{Error, ErrorKind, Result};
use crate::engine::failpoint;
use crate::engine::pg::archive::{Entry, Section, Toc, list_file};

/// What a failure after step 1 means for the target.
const PARTLY: &str = "the parallel load had already committed the schema (and maybe some rows): \
the target is partly restored — roll it back to the safety snapshot with \
`supabackup restore rollback <restore id>`, or restore again in replace mode";

/// Entries of step 3: built per table, side by side.
fn is_index(e: &Entry) -> bool {
    e.section == Section::PostData && matches!(e.desc.as_str(), "INDEX" | "CONSTRAINT")
}

/// The relation an index or key belongs to: the first table or
/// materialized view it depends on.
fn relation_of(toc: &Toc, e: &Entry) -> Option<i32> {
    e.deps
        .iter()
        .filter_map(|d| toc.get(*d))
        .find(|p| matches!(p.desc.as_str(), "TABLE" | "MATERIALIZED VIEW"))
        .map(|p| p.dump_id)
}

/// Groups of relations one session handles: partitions and their parent
/// (pg_dump's `TABLE ATTACH` entries join them) are one group.
struct Groups(HashMap<i32, i32>);

impl Groups {
    fn new(toc: &Toc) -> Groups {
        let mut g = Groups(HashMap::new());
        for e in toc.entries.iter().filter(|e| e.desc == "TABLE ATTACH") {
            let tables: Vec<i32> = e
                .deps
                .iter()
                .filter(|d| toc.get(**d).is_some_and(|p| p.desc == "TABLE"))
                .copied()
                .collect();
            for w in tables.windows(2) {
                let (a, b) = (g.root(w[0]), g.root(w[1]));
                if a != b {
                    g.0.insert(a.max(b), a.min(b));
                }
            }
        }
        g
    }

    fn root(&self, mut id: i32) -> i32 {
        while let Some(&up) = self.0.get(&id) {
            id = up;
        }
        id
    }
}

/// Step 3's work: the kept indexes and keys of one archive spread over
/// `jobs` sessions — a relation's (and its partitions') on one session,
/// the groups with the most rows first, each to the least loaded session
/// — each session's in archive order.
fn assign_indexes<'t>(
    toc: &'t Toc,
    kept: &[&'t Entry],
    rows: &HashMap<(&str, &str), u64>,
    jobs: usize,
) -> Vec<Vec<&'t Entry>> {
    let jobs = jobs.max(1);
    let groups = Groups::new(toc);
    let position: HashMap<i32, usize> = toc
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.dump_id, i))
        .collect();
    // Each group's entries and weight (its tables' rows).
    let mut by_group: HashMap<i32, (u64, Vec<&'t Entry>)> = HashMap::new();
    for e in kept.iter().copied().filter(|e| is_index(e)) {
        let rel = relation_of(toc, e).unwrap_or(e.dump_id);
        let slot = by_group.entry(groups.root(rel)).or_default();
        slot.1.push(e);
        if let Some(t) = toc.get(rel) {
            let ns = t.namespace.as_deref().unwrap_or("");
            slot.0 += rows.get(&(ns, t.tag.as_str())).copied().unwrap_or(0);
        }
    }
    let mut order: Vec<(i32, (u64, Vec<&'t Entry>))> = by_group.into_iter().collect();
    order.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    let mut load = vec![0u64; jobs];
    let mut assigned: Vec<Vec<&'t Entry>> = vec![Vec::new(); jobs];
    for (_, (weight, entries)) in order {
        let s = (0..jobs).min_by_key(|s| (load[*s], *s)).unwrap_or(0);
        load[s] += weight.max(1);
        assigned[s].extend(entries);
    }
    for entries in &mut assigned {
        entries.sort_by_key(|e| position.get(&e.dump_id).copied());
    }
    assigned
}

/// Step 3's list files (one per session that has work) and step 4's.
pub(super) fn waves(p: &Prepared, jobs: usize) -> Result<Waves> {
    let rows: HashMap<(&str, &str), u64> = p
        .verified
        .manifest
        .tables
        .iter()
        .map(|t| ((t.schema.as_str(), t.name.as_str()), t.rows))
        .collect();
    let mut per_session: Vec<Vec<ArchiveList>> = vec![Vec::new(); jobs];
    let mut rest = Vec::new();
    for (i, a) in p.archives.iter().enumerate() {
        let keep = &p.selection.keep[i];
        let kept: Vec<&Entry> = a
            .toc
            .entries
            .iter()
            .filter(|e| keep.contains(&e.dump_id))
            .collect();
        if !kept.iter().any(|e| !e.is_setting()) {
            continue;
        }
        let assigned = assign_indexes(&a.toc, &kept, &rows, jobs);
        let settings: Vec<&Entry> = kept.iter().copied().filter(|e| e.is_setting()).collect();
        for (s, entries) in assigned.into_iter().enumerate() {
            if entries.is_empty() {
                continue;
            }
            let list = a.path.with_extension(format!("indexes{s}.list"));
            let text = list_file(settings.iter().copied().chain(entries));
            std::fs::write(&list, text).map_err(|e| Error::io("write", &list, e))?;
            per_session[s].push((a.path.clone(), list));
        }
        let list = a.path.with_extension("rest.list");
        let text = list_file(kept.iter().copied().filter(|e| !is_index(e)));
        std::fs::write(&list, text).map_err(|e| Error::io("write", &list, e))?;
        rest.push((a.path.clone(), list));
    }
    per_session.retain(|l| !l.is_empty());
    Ok(Waves {
        indexes: per_session,
        rest,
    })
}

/// Runs `n` sessions side by side; the first real failure stops the others
/// and is the one returned.
fn side_by_side<T: Send>(
    n: usize,
    cancel: &CancellationToken,
    work: &(dyn Fn(usize, &CancellationToken) -> Result<T> + Sync),
) -> Result<Vec<T>> {
    let stop = cancel.child_token();
    let results: Mutex<Vec<Option<Result<T>>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|scope| {
        for i in 0..n {
            let (stop, results) = (&stop, &results);
            scope.spawn(move || {
                let r = work(i, stop);
                if r.is_err() {
                    stop.cancel();
                }
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(r);
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| Error::internal("a restore session panicked"))?;
    let mut out = Vec::with_capacity(n);
    let mut cancelled = None;
    for r in results {
        match r {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) if e.kind == ErrorKind::Cancelled => cancelled = Some(e),
            Some(Err(e)) => return Err(e),
            None => return Err(Error::internal("a restore session panicked")),
        }
    }
    match cancelled {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// A failure after step 1, with what it means for the target.
fn partly(e: Error) -> Error {
    if e.kind == ErrorKind::Cancelled {
        return Error::new(ErrorKind::Cancelled, format!("cancelled; {PARTLY}"));
    }
    e.with_hint(PARTLY)
}

/// The four steps (module docs). `changed` turns true once step 1 committed.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    conn: &Conn<'_>,
    script: &Script,
    v: &VerifiedBackup,
    jobs: usize,
    rows: &[(String, String, u64)],
    cancel: &CancellationToken,
    on_xid: &XidSink,
    changed: &AtomicBool,
) -> Result<()> {
    let waves = script
        .waves
        .as_ref()
        .ok_or_else(|| Error::internal("a parallel load without its post-data lists"))?;
    // 1. Schema.
    let (xid_tx, xid_rx) = std::sync::mpsc::channel::<String>();
    conn.session(cancel, xid_lines(xid_tx), &mut |out| {
        send(out, &script.preamble)?;
        began(out, &xid_rx, on_xid)?;
        if script.roles {
            send_file(v, Artifact::Roles, Policy::Script, out, None, None)?;
        }
        send(out, &script.before_ddl)?;
        failpoint::pause("restore.emptied");
        conn.pg_restore_section("pre-data", &script.archives, cancel, out)?;
        failpoint::pause("restore.pre_data");
        send(out, &script.deletes)?;
        send(out, "COMMIT;\n")
    })?;
    changed.store(true, Ordering::SeqCst);
    // 2. Rows.
    let mut loaded = Vec::new();
    if let Some((sel, partial)) = &script.data {
        let owner = Share::plan(rows, jobs);
        let parts = side_by_side(jobs, cancel, &|session, stop| {
            let share = Share {
                session,
                sessions: jobs,
                owner: owner.clone(),
            };
            let mut loaded = Vec::new();
            conn.session(stop, Box::new(|_| {}), &mut |out| {
                send(out, "BEGIN;\n")?;
                loaded = send_file(
                    v,
                    Artifact::Data,
                    Policy::Data,
                    out,
                    partial.then_some(sel),
                    Some(&share),
                )?;
                send(out, "COMMIT;\n")
            })?;
            Ok(loaded)
        })
        .map_err(partly)?;
        loaded = parts.into_iter().next().unwrap_or_default();
    }
    failpoint::pause("restore.data");
    // 3. Indexes and keys, statement by statement.
    side_by_side(waves.indexes.len(), cancel, &|session, stop| {
        conn.session(stop, Box::new(|_| {}), &mut |out| {
            conn.pg_restore_section("post-data", &waves.indexes[session], stop, out)
        })
    })
    .map_err(partly)?;
    // 4. The rest of post-data and the end.
    conn.session(cancel, Box::new(|_| {}), &mut |out: &mut dyn Write| {
        send(out, "BEGIN;\nSET client_min_messages = warning;\n")?;
        conn.pg_restore_section("post-data", &waves.rest, cancel, out)?;
        failpoint::pause("restore.post_data");
        finish(v, script, &loaded, out)
    })
    .map_err(partly)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dump_id: i32, desc: &str, tag: &str, section: Section, deps: &[i32]) -> Entry {
        Entry {
            dump_id,
            had_dumper: true,
            table_oid: 0,
            oid: 0,
            tag: tag.into(),
            desc: desc.into(),
            section,
            effective_section: section,
            defn: String::new(),
            drop_stmt: String::new(),
            namespace: Some("public".into()),
            owner: None,
            deps: deps.to_vec(),
        }
    }

    #[test]
    fn a_table_and_its_partitions_build_on_one_session_and_the_rest_waits() {
        use Section::{PostData, PreData};
        let toc = Toc {
            version: (1, 16, 0),
            database: "db".into(),
            server_version: "17".into(),
            dump_version: "17".into(),
            entries: vec![
                entry(1, "TABLE", "readings", PreData, &[]),
                entry(2, "TABLE", "readings_a", PreData, &[]),
                entry(3, "TABLE", "readings_b", PreData, &[]),
                entry(4, "TABLE ATTACH", "readings_a", PreData, &[1, 2]),
                entry(5, "TABLE ATTACH", "readings_b", PreData, &[1, 3]),
                entry(6, "TABLE", "big", PreData, &[]),
                entry(7, "TABLE", "small", PreData, &[]),
                entry(10, "CONSTRAINT", "readings readings_pkey", PostData, &[1]),
                entry(
                    11,
                    "CONSTRAINT",
                    "readings_a readings_a_pkey",
                    PostData,
                    &[2],
                ),
                entry(12, "INDEX", "readings_b_v", PostData, &[3]),
                entry(13, "INDEX ATTACH", "readings_a_pkey", PostData, &[10, 11]),
                entry(14, "CONSTRAINT", "big big_pkey", PostData, &[6]),
                entry(15, "INDEX", "big_name", PostData, &[6]),
                entry(16, "CONSTRAINT", "small small_pkey", PostData, &[7]),
                entry(17, "FK CONSTRAINT", "small small_big", PostData, &[7, 14]),
                entry(18, "TRIGGER", "big audit", PostData, &[6]),
            ],
        };
        let kept: Vec<&Entry> = toc.entries.iter().filter(|e| e.dump_id != 15).collect();
        let rows: HashMap<(&str, &str), u64> = [
            (("public", "readings_a"), 500),
            (("public", "readings_b"), 400),
            (("public", "big"), 1000),
            (("public", "small"), 10),
        ]
        .into_iter()
        .collect();
        let ids = |v: &Vec<&Entry>| v.iter().map(|e| e.dump_id).collect::<Vec<_>>();
        let got = assign_indexes(&toc, &kept, &rows, 2);
        // big (1000 rows) first to session 0; the partition tree (900) to
        // session 1; small (10) to the lighter one, session 1.
        assert_eq!(ids(&got[0]), [14]);
        assert_eq!(ids(&got[1]), [10, 11, 12, 16]);
        // Only kept indexes and keys; attachments, foreign keys and
        // triggers are left to the last step.
        let all: Vec<i32> = got.iter().flat_map(ids).collect();
        for later in [13, 15, 17, 18] {
            assert!(!all.contains(&later), "{later} is not built side by side");
        }
        // One session gets everything; more sessions than groups leave some idle.
        assert_eq!(assign_indexes(&toc, &kept, &rows, 1)[0].len(), 5);
        let many = assign_indexes(&toc, &kept, &rows, 8);
        assert_eq!(many.iter().filter(|s| !s.is_empty()).count(), 3);
    }
}
