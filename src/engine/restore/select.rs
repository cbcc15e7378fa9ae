//! Which entries of the backup's schema archives a restore runs, decided
//! against the target's own schema (dumped by pg_dump just before, with the
//! same options, so the same object has the same key and definition in
//! both):
//!
//! - objects of user schemas in scope are created (replace mode has
//!   emptied those schemas first; new mode was refused if they existed);
//! - an object that already exists in the target with the same definition
//!   and owner is skipped — this is how a new project's platform (event
//!   triggers, publications, extensions, auth/storage tables, default
//!   privileges) is recognised: by content, whoever owns it;
//! - one that exists with another definition is reported and the target's
//!   is kept, except that replace mode replaces the user's triggers,
//!   policies and rules on platform tables and objects in platform schemas
//!   that platform roles do not own (and a rollback replaces everything);
//! - an object missing from the target is created when it is the user's
//!   (database-wide objects; triggers, policies, rules and indexes on
//!   platform tables; objects in platform schemas that platform roles do
//!   not own; a whole platform schema the target lacks), and otherwise left
//!   to the platform and reported;
//! - an entry whose dependencies will exist neither in the target nor in
//!   the restore is not run: for a user object that refuses the restore,
//!   for a platform object it is reported.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::engine::backup::platform::{home, is_platform_schema};
use crate::engine::pg::archive::{Entry, EntryKey, Toc};
use crate::engine::supabase;

/// One schema archive of the backup, decoded to a file.
pub(crate) struct ArchiveInput {
    pub path: std::path::PathBuf,
    pub toc: Toc,
}

/// What the selection works from.
pub(crate) struct SelectInput<'a> {
    pub archives: &'a [ArchiveInput],
    /// The target's schema before the restore.
    pub target: &'a Toc,
    /// Schemas the scope names (empty: everything).
    pub schemas: &'a [String],
    pub replace: bool,
    /// Rollback: the target must become exactly the backup.
    pub exact: bool,
    /// User schemas emptied (public) or dropped before the DDL.
    pub replaced: &'a BTreeSet<String>,
    /// Target objects (catalog id, OID) the emptying drops outside those
    /// schemas (dependents the user accepted, or that come back).
    pub cascaded: &'a HashSet<(u32, u32)>,
    /// The restoring role: its default privileges in schemas being created
    /// are suspended, so the backup's are always re-applied.
    pub current_user: &'a str,
    pub suspended: &'a BTreeSet<String>,
    /// Schemas that exist in the target.
    pub target_schemas: &'a HashSet<String>,
}

/// A statement run before the restore's DDL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PreDrop {
    pub what: String,
    pub sql: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Selection {
    /// Per archive, in input order, the dump ids to restore.
    pub keep: Vec<BTreeSet<i32>>,
    /// Target objects dropped (exactly, no CASCADE) before the DDL.
    pub drops: Vec<PreDrop>,
    /// Platform objects the target already has with the same definition.
    pub skipped: Vec<String>,
    /// Objects the target has with another definition (the target's kept).
    pub differs: Vec<String>,
    /// Objects the restore replaces with the backup's definition.
    pub replaced: Vec<String>,
    /// Platform schemas (or database-wide objects) the target lacks and the
    /// restore creates.
    pub created_platform: Vec<String>,
    /// Platform objects the target lacks, left to the platform.
    pub missing_platform: Vec<String>,
    /// User objects in scope whose dependencies will not exist: refusals.
    pub unsatisfied: Vec<String>,
    /// Other objects skipped because a dependency will not exist.
    pub skipped_for_deps: Vec<String>,
    /// Schemas whose privileges are reset before the backup's are applied.
    pub acl_resets: Vec<String>,
    /// (schema, name) of the tables and partitioned tables that will exist.
    pub tables: HashSet<(String, String)>,
}

/// Attachments users put on platform tables.
fn is_attachment(desc: &str) -> bool {
    matches!(
        desc,
        "TRIGGER" | "POLICY" | "RULE" | "INDEX" | "ROW SECURITY"
    )
}

fn replaceable_attachment(desc: &str) -> bool {
    matches!(desc, "TRIGGER" | "POLICY" | "RULE")
}

fn same(a: &Entry, b: &Entry) -> bool {
    a.defn == b.defn && a.owner == b.owner
}

fn is_table(desc: &str) -> bool {
    desc == "TABLE"
}

/// Whether an object of the target survives the emptying of the replaced
/// schemas and the accepted cascade.
fn survives(toc: &Toc, e: &Entry, input: &SelectInput<'_>) -> bool {
    if input.cascaded.contains(&(e.table_oid, e.oid)) {
        return false;
    }
    if e.is_attached()
        && let Some(p) = toc.parent_of(e)
        && !survives(toc, p, input)
    {
        return false;
    }
    match home(toc, e) {
        Some(s) if input.replaced.contains(s) => {
            // public is emptied, not dropped: the schema itself, its
            // privileges and comment, and default privileges in it stay.
            s == "public"
                && (e.desc == "SCHEMA"
                    || e.desc == "DEFAULT ACL"
                    || (e.is_attached() && toc.parent_of(e).is_some_and(|p| p.desc == "SCHEMA")))
        }
        _ => true,
    }
}

/// Decides what to run; see the module comment.
pub(crate) fn select(input: &SelectInput<'_>) -> Selection {
    let t = input.target;
    let mut sel = Selection::default();
    // The target's objects that will still exist when the DDL runs.
    let mut existing: HashMap<EntryKey, &Entry> = t
        .entries
        .iter()
        .filter(|e| survives(t, e, input))
        .map(|e| (e.key(), e))
        .collect();
    let backup_keys: HashSet<EntryKey> = input
        .archives
        .iter()
        .flat_map(|a| a.toc.entries.iter().map(Entry::key))
        .collect();
    let whole = input.schemas.is_empty();

    // Rollback: what the target has and the backup does not goes first
    // (in reverse dump order: dependents before what they depend on).
    if input.exact {
        let mut dropped: HashSet<EntryKey> = HashSet::new();
        for e in t.entries.iter().rev() {
            let key = e.key();
            if e.is_setting()
                || e.is_attached()
                || e.drop_stmt.is_empty()
                || matches!(e.desc.as_str(), "DATABASE" | "DATABASE PROPERTIES")
                || !existing.contains_key(&key)
                || backup_keys.contains(&key)
            {
                continue;
            }
            sel.drops.push(PreDrop {
                what: key.to_string(),
                sql: e.drop_stmt.clone(),
            });
            dropped.insert(key);
        }
        existing.retain(|k, e| {
            !dropped.contains(k) && !t.parent_of(e).is_some_and(|p| dropped.contains(&p.key()))
        });
    }

    let mut replaced_keys: HashSet<EntryKey> = HashSet::new();
    let mut created_schemas: BTreeSet<String> = BTreeSet::new();
    for a in input.archives {
        let toc = &a.toc;
        let mut keep = BTreeSet::new();
        // 0 skip, 1 keep; decided in order, attached entries after their parent.
        let mut decided: HashMap<i32, bool> = HashMap::new();
        for e in &toc.entries {
            if e.is_setting() {
                keep.insert(e.dump_id);
                decided.insert(e.dump_id, true);
                continue;
            }
            // Database-level properties are the target's (a restore is into
            // an existing database).
            if matches!(e.desc.as_str(), "DATABASE" | "DATABASE PROPERTIES")
                || (e.is_attached()
                    && toc.parent_of(e).is_some_and(|p| {
                        matches!(p.desc.as_str(), "DATABASE" | "DATABASE PROPERTIES")
                    }))
            {
                decided.insert(e.dump_id, false);
                continue;
            }
            let schema = home(toc, e);
            let platform = schema.is_none_or(is_platform_schema);
            let in_scope = whole
                || schema.is_some_and(|s| input.schemas.iter().any(|x| x == s))
                || (e.desc == "EXTENSION" && !existing.contains_key(&e.key()))
                || (e.desc == "COMMENT"
                    && toc.parent_of(e).is_some_and(|p| {
                        p.desc == "EXTENSION" && decided.get(&p.dump_id) == Some(&true)
                    }));
            if !in_scope {
                decided.insert(e.dump_id, false);
                continue;
            }
            let key = e.key();
            let parent_kept = e.is_attached()
                && toc
                    .parent_of(e)
                    .is_some_and(|p| decided.get(&p.dump_id) == Some(&true));
            let label = key.to_string();
            let choice = match existing.get(&key) {
                _ if parent_kept => true,
                Some(t_e) if same(t_e, e) => {
                    // Re-apply the restoring role's default privileges, which
                    // the restore suspended in the schemas it creates.
                    let suspended_acl = e.desc == "DEFAULT ACL"
                        && e.owner.as_deref() == Some(input.current_user)
                        && schema.is_some_and(|s| input.suspended.contains(s));
                    if !suspended_acl && platform && !e.is_attached() {
                        sel.skipped.push(label);
                    }
                    suspended_acl
                }
                Some(t_e) => {
                    let user_owned = e
                        .owner
                        .as_deref()
                        .is_some_and(|o| !supabase::is_reserved_role(o));
                    let replace_it = !e.is_attached()
                        && !t_e.drop_stmt.is_empty()
                        && (input.exact
                            || (input.replace
                                && platform
                                && schema.is_some()
                                && (replaceable_attachment(&e.desc) || user_owned)));
                    if replace_it {
                        sel.drops.push(PreDrop {
                            what: label.clone(),
                            sql: t_e.drop_stmt.clone(),
                        });
                        replaced_keys.insert(key.clone());
                        sel.replaced.push(label);
                        true
                    } else if !platform {
                        // A surviving object of a replaced user schema
                        // (public's privileges and comment, default privileges).
                        if e.desc == "ACL" {
                            if let Some(p) = toc.parent_of(e).filter(|p| p.desc == "SCHEMA") {
                                sel.acl_resets.push(p.tag.clone());
                            }
                            true
                        } else if e.desc == "DEFAULT ACL" {
                            let mine = e.owner.as_deref() == Some(input.current_user);
                            if !mine {
                                sel.differs
                                    .push(format!("{label} (of another role: the target's kept)"));
                            }
                            mine
                        } else {
                            e.desc != "SCHEMA"
                        }
                    } else if input.exact && e.is_attached() {
                        true
                    } else {
                        sel.differs.push(label);
                        false
                    }
                }
                None if !platform => true,
                // A comment or privileges the target's object lacks: applied
                // to the user's own objects only (a platform object's belong
                // to the platform, and only its owner may change them).
                None if e.is_attached() => {
                    let parent_users = toc.parent_of(e).is_some_and(|p| {
                        p.owner
                            .as_deref()
                            .is_some_and(|o| !supabase::is_reserved_role(o))
                    });
                    if !(input.exact || parent_users) {
                        sel.differs.push(label);
                    }
                    input.exact || parent_users
                }
                None => {
                    let schema_missing = schema.is_some_and(|s| {
                        !input.target_schemas.contains(s) || created_schemas.contains(s)
                    });
                    let user_owned = e
                        .owner
                        .as_deref()
                        .is_some_and(|o| !supabase::is_reserved_role(o));
                    if schema.is_none() {
                        sel.created_platform.push(label);
                        true
                    } else if schema_missing || e.desc == "SCHEMA" {
                        if let Some(s) = schema
                            && created_schemas.insert(s.to_owned())
                        {
                            sel.created_platform
                                .push(format!("schema {s} and its objects (the target lacks it)"));
                        }
                        true
                    } else if input.exact || is_attachment(&e.desc) || user_owned {
                        sel.created_platform.push(label);
                        true
                    } else {
                        sel.missing_platform.push(label);
                        false
                    }
                }
            };
            decided.insert(e.dump_id, choice);
            if choice {
                keep.insert(e.dump_id);
            }
        }
        sel.keep.push(keep);
    }

    // Dependencies: every dependency of a kept entry is kept too or exists
    // in the target; otherwise the entry (and what needs it) is not run.
    let exists_after = |toc: &Toc, id: i32, keep: &BTreeSet<i32>| -> bool {
        keep.contains(&id)
            || toc.get(id).is_none_or(|d| {
                d.is_setting()
                    || matches!(d.desc.as_str(), "DATABASE" | "DATABASE PROPERTIES")
                    || (existing.contains_key(&d.key()) && !replaced_keys.contains(&d.key()))
            })
    };
    for (i, a) in input.archives.iter().enumerate() {
        loop {
            let keep = &sel.keep[i];
            let broken: Vec<(i32, i32)> = a
                .toc
                .entries
                .iter()
                .filter(|e| keep.contains(&e.dump_id) && !e.is_setting())
                .filter_map(|e| {
                    e.deps
                        .iter()
                        .find(|d| !exists_after(&a.toc, **d, keep))
                        .map(|d| (e.dump_id, *d))
                })
                .collect();
            if broken.is_empty() {
                break;
            }
            for (id, dep) in broken {
                sel.keep[i].remove(&id);
                let (Some(e), Some(d)) = (a.toc.get(id), a.toc.get(dep)) else {
                    continue;
                };
                if e.is_attached() {
                    continue;
                }
                let schema = home(&a.toc, e);
                let line = format!("{} (needs {})", e.key(), d.key());
                if schema.is_some_and(|s| !is_platform_schema(s)) {
                    sel.unsatisfied.push(line);
                } else {
                    sel.skipped_for_deps.push(line);
                }
            }
        }
    }
    // The tables that will exist, for the data.
    for (i, a) in input.archives.iter().enumerate() {
        for e in &a.toc.entries {
            if is_table(&e.desc) && sel.keep[i].contains(&e.dump_id) {
                sel.tables
                    .insert((e.namespace.clone().unwrap_or_default(), e.tag.clone()));
            }
        }
    }
    for e in existing.values() {
        if is_table(&e.desc) {
            sel.tables
                .insert((e.namespace.clone().unwrap_or_default(), e.tag.clone()));
        }
    }
    let dedup = |v: &mut Vec<String>| {
        let mut seen = BTreeSet::new();
        v.retain(|x| seen.insert(x.clone()));
    };
    dedup(&mut sel.skipped);
    dedup(&mut sel.differs);
    dedup(&mut sel.acl_resets);
    sel
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pg::archive::Section;

    fn e(
        id: i32,
        desc: &str,
        ns: Option<&str>,
        tag: &str,
        owner: &str,
        defn: &str,
        deps: &[i32],
    ) -> Entry {
        Entry {
            dump_id: id,
            had_dumper: false,
            table_oid: 1259,
            oid: 10_000 + id as u32,
            tag: tag.into(),
            desc: desc.into(),
            section: Section::PreData,
            effective_section: Section::PreData,
            defn: defn.into(),
            drop_stmt: format!("DROP {desc} {tag};\n"),
            namespace: ns.map(str::to_owned),
            owner: (!owner.is_empty()).then(|| owner.to_owned()),
            deps: deps.to_vec(),
        }
    }

    fn toc(entries: Vec<Entry>) -> Toc {
        Toc {
            version: (1, 14, 0),
            database: "x".into(),
            server_version: "15".into(),
            dump_version: "15".into(),
            entries,
        }
    }

    /// A new project: platform objects, some owned by postgres.
    fn platform() -> Vec<Entry> {
        vec![
            e(
                1,
                "SCHEMA",
                None,
                "auth",
                "supabase_admin",
                "CREATE SCHEMA auth;",
                &[],
            ),
            e(
                2,
                "TABLE",
                Some("auth"),
                "users",
                "supabase_auth_admin",
                "CREATE TABLE auth.users (id uuid);",
                &[1],
            ),
            e(
                3,
                "SCHEMA",
                None,
                "extensions",
                "postgres",
                "CREATE SCHEMA extensions;",
                &[],
            ),
            e(
                4,
                "FUNCTION",
                Some("extensions"),
                "grant_pg_net_access()",
                "postgres",
                "CREATE FUNCTION g();",
                &[3],
            ),
            e(
                5,
                "EVENT TRIGGER",
                None,
                "issue_pg_net_access",
                "postgres",
                "CREATE EVENT TRIGGER i;",
                &[4],
            ),
            e(
                6,
                "PUBLICATION",
                None,
                "supabase_realtime",
                "postgres",
                "CREATE PUBLICATION supabase_realtime;",
                &[],
            ),
            e(
                7,
                "EXTENSION",
                None,
                "pgcrypto",
                "",
                "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;",
                &[3],
            ),
        ]
    }

    struct Case {
        target: Toc,
        archives: Vec<ArchiveInput>,
        schemas: Vec<String>,
        replace: bool,
        replaced: BTreeSet<String>,
    }

    impl Case {
        fn run(&self) -> Selection {
            let cascaded = HashSet::new();
            let suspended = BTreeSet::new();
            let schemas: HashSet<String> = self
                .target
                .entries
                .iter()
                .filter(|e| e.desc == "SCHEMA")
                .map(|e| e.tag.clone())
                .chain(["public".to_owned()])
                .collect();
            select(&SelectInput {
                archives: &self.archives,
                target: &self.target,
                schemas: &self.schemas,
                replace: self.replace,
                exact: false,
                replaced: &self.replaced,
                cascaded: &cascaded,
                current_user: "postgres",
                suspended: &suspended,
                target_schemas: &schemas,
            })
        }
    }

    fn archive(entries: Vec<Entry>) -> Vec<ArchiveInput> {
        vec![ArchiveInput {
            path: "x".into(),
            toc: toc(entries),
        }]
    }

    #[test]
    fn a_new_projects_platform_is_skipped_whoever_owns_it() {
        let mut backup = platform();
        backup.push(e(
            20,
            "TABLE",
            Some("public"),
            "orders",
            "postgres",
            "CREATE TABLE orders();",
            &[],
        ));
        backup.push(e(
            21,
            "TRIGGER",
            Some("auth"),
            "users on_auth_user_created",
            "supabase_auth_admin",
            "CREATE TRIGGER on_auth_user_created;",
            &[2],
        ));
        backup.push(e(
            22,
            "ACL",
            Some("public"),
            "TABLE orders",
            "postgres",
            "GRANT ...;",
            &[20],
        ));
        backup.push(e(
            23,
            "EXTENSION",
            None,
            "citext",
            "",
            "CREATE EXTENSION citext;",
            &[3],
        ));
        let case = Case {
            target: toc(platform()),
            archives: archive(backup),
            schemas: vec![],
            replace: false,
            replaced: BTreeSet::new(),
        };
        let sel = case.run();
        let kept: Vec<i32> = sel.keep[0].iter().copied().collect();
        assert_eq!(kept, [20, 21, 22, 23]);
        assert!(
            sel.skipped
                .contains(&"event trigger issue_pg_net_access".to_string()),
            "{:?}",
            sel.skipped
        );
        assert!(
            sel.skipped
                .contains(&"function extensions.grant_pg_net_access()".to_string())
        );
        assert!(
            sel.differs.is_empty() && sel.unsatisfied.is_empty(),
            "{sel:?}"
        );
        assert!(sel.tables.contains(&("auth".into(), "users".into())));
        assert!(sel.tables.contains(&("public".into(), "orders".into())));
    }

    #[test]
    fn differing_and_missing_platform_objects_are_reported_not_fatal() {
        let mut target = platform();
        target[4].defn = "CREATE EVENT TRIGGER i; -- newer".into();
        target.remove(1); // auth.users missing (an older platform)
        let mut backup = platform();
        backup.push(e(
            30,
            "POLICY",
            Some("auth"),
            "users mine",
            "supabase_auth_admin",
            "CREATE POLICY mine;",
            &[2],
        ));
        let case = Case {
            target: toc(target),
            archives: archive(backup),
            schemas: vec![],
            replace: true,
            replaced: BTreeSet::new(),
        };
        let sel = case.run();
        assert_eq!(sel.differs, ["event trigger issue_pg_net_access"]);
        assert_eq!(sel.missing_platform, ["table auth.users"]);
        assert!(sel.keep[0].is_empty(), "{:?}", sel.keep);
        assert_eq!(
            sel.skipped_for_deps,
            ["policy auth.users mine (needs table auth.users)"]
        );
    }

    #[test]
    fn replace_mode_replaces_the_users_triggers_on_platform_tables() {
        let mut target = platform();
        target.push(e(
            21,
            "TRIGGER",
            Some("auth"),
            "users t",
            "supabase_auth_admin",
            "CREATE TRIGGER t AFTER INSERT;",
            &[2],
        ));
        let mut backup = platform();
        backup.push(e(
            21,
            "TRIGGER",
            Some("auth"),
            "users t",
            "supabase_auth_admin",
            "CREATE TRIGGER t AFTER UPDATE;",
            &[2],
        ));
        let mut case = Case {
            target: toc(target),
            archives: archive(backup),
            schemas: vec![],
            replace: false,
            replaced: BTreeSet::new(),
        };
        let sel = case.run();
        assert_eq!(sel.differs, ["trigger auth.users t"]);
        case.replace = true;
        let sel = case.run();
        assert_eq!(sel.replaced, ["trigger auth.users t"]);
        assert_eq!(sel.drops.len(), 1);
        assert!(sel.keep[0].contains(&21));
    }

    #[test]
    fn scoped_restores_take_their_schemas_and_refuse_missing_dependencies() {
        let mut backup = platform();
        backup.push(e(
            40,
            "SCHEMA",
            None,
            "billing",
            "postgres",
            "CREATE SCHEMA billing;",
            &[],
        ));
        backup.push(e(
            41,
            "TYPE",
            Some("public"),
            "mood",
            "postgres",
            "CREATE TYPE mood;",
            &[],
        ));
        backup.push(e(
            42,
            "TABLE",
            Some("billing"),
            "inv",
            "postgres",
            "CREATE TABLE inv(m mood);",
            &[40, 41],
        ));
        backup.push(e(
            43,
            "EXTENSION",
            None,
            "citext",
            "",
            "CREATE EXTENSION citext;",
            &[3],
        ));
        let case = Case {
            target: toc(platform()),
            archives: archive(backup),
            schemas: vec!["billing".into()],
            replace: false,
            replaced: BTreeSet::new(),
        };
        let sel = case.run();
        assert_eq!(
            sel.unsatisfied,
            ["table billing.inv (needs type public.mood)"]
        );
        assert!(
            sel.keep[0].contains(&40) && sel.keep[0].contains(&43),
            "{:?}",
            sel.keep
        );
        assert!(!sel.keep[0].contains(&41), "public is out of scope");
    }

    #[test]
    fn a_whole_platform_schema_the_target_lacks_is_created() {
        let mut backup = platform();
        backup.push(e(
            50,
            "SCHEMA",
            None,
            "vault",
            "supabase_admin",
            "CREATE SCHEMA vault;",
            &[],
        ));
        backup.push(e(
            51,
            "TABLE",
            Some("vault"),
            "secrets",
            "supabase_admin",
            "CREATE TABLE vault.secrets();",
            &[50],
        ));
        let case = Case {
            target: toc(platform()),
            archives: archive(backup),
            schemas: vec![],
            replace: false,
            replaced: BTreeSet::new(),
        };
        let sel = case.run();
        assert!(sel.keep[0].contains(&50) && sel.keep[0].contains(&51));
        assert_eq!(
            sel.created_platform,
            ["schema vault and its objects (the target lacks it)"]
        );
    }
}
