//! What in a schema archive belongs to the Supabase platform — the objects a
//! new project already has — learned from the archive's own content rather
//! than from who owns an object (the platform creates objects owned by
//! `postgres`, and users create objects owned by platform roles):
//!
//! - everything that lives in a platform schema (auth, storage, extensions,
//!   realtime, …, and PostgreSQL's own `pg_catalog`);
//! - event triggers that call a function living in a platform schema;
//! - Supabase Realtime's publications (their table memberships are the
//!   user's and stay);
//! - default privileges of platform roles other than `postgres`;
//! - comments of extensions installed in a platform schema (the extension
//!   brings its own);
//! - the privileges, comments and labels of any of these.
//!
//! `schema.sql` (for Supabase's documented psql procedure) leaves these
//! out, and the manifest says which and why. The engine's own restores do
//! not rely on this list: they compare every object with the target
//! (`restore/select.rs`). Restore tests use it to build a new project's
//! platform in a scratch database.

use std::collections::BTreeMap;

use crate::engine::pg::archive::{Entry, Toc};
use crate::engine::supabase;

/// Publications every Supabase project has.
pub const PLATFORM_PUBLICATIONS: &[&str] = &[
    "supabase_realtime",
    "supabase_realtime_messages_publication",
];

/// The schema an entry's object lives in: its namespace; for a schema its
/// own name; for a comment or privileges that of the object they belong to.
/// `None` for database-wide objects (extensions, event triggers, …).
pub fn home<'a>(toc: &'a Toc, e: &'a Entry) -> Option<&'a str> {
    if e.is_attached() {
        return match toc.parent_of(e) {
            Some(p) => home(toc, p),
            None => e.namespace.as_deref(),
        };
    }
    if e.desc == "SCHEMA" {
        return Some(e.tag.as_str());
    }
    e.namespace.as_deref()
}

/// Whether `schema` is the platform's (or PostgreSQL's own).
pub fn is_platform_schema(schema: &str) -> bool {
    supabase::is_managed_schema(schema) || schema == "pg_catalog"
}

/// `"a"."b"` or `"a".` at the start of `s` → `a` (the first quoted identifier).
fn first_quoted_ident(s: &str) -> Option<String> {
    let rest = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            if chars.peek() == Some(&'"') {
                chars.next();
                out.push('"');
            } else {
                return Some(out);
            }
        } else {
            out.push(c);
        }
    }
    None
}

/// The schema of the function an event trigger calls, from its definition
/// (`... EXECUTE FUNCTION "schema"."name"();`).
fn event_trigger_function_schema(defn: &str) -> Option<String> {
    let at = defn
        .find("EXECUTE FUNCTION ")
        .map(|i| i + "EXECUTE FUNCTION ".len())
        .or_else(|| {
            defn.find("EXECUTE PROCEDURE ")
                .map(|i| i + "EXECUTE PROCEDURE ".len())
        })?;
    let rest = &defn[at..];
    if rest.starts_with('"') {
        let schema = first_quoted_ident(rest)?;
        // Only a qualified name names a schema.
        let after = &rest[schema.replace('"', "\"\"").len() + 2..];
        return after.starts_with('.').then_some(schema);
    }
    let name: String = rest
        .chars()
        .take_while(|c| !matches!(c, '(' | ' ' | ';'))
        .collect();
    name.split_once('.').map(|(s, _)| s.to_owned())
}

/// The schema an extension is installed in, from its definition
/// (`CREATE EXTENSION IF NOT EXISTS "x" WITH SCHEMA "s";`).
pub fn extension_schema(defn: &str) -> Option<String> {
    let at = defn.find(" WITH SCHEMA ")? + " WITH SCHEMA ".len();
    let rest = &defn[at..];
    if rest.starts_with('"') {
        return first_quoted_ident(rest);
    }
    Some(
        rest.chars()
            .take_while(|c| !matches!(c, ' ' | ';'))
            .collect(),
    )
}

/// Why an entry belongs to the platform, if it does.
fn reason(toc: &Toc, e: &Entry, decided: &BTreeMap<i32, String>) -> Option<String> {
    if e.is_setting() || matches!(e.desc.as_str(), "DATABASE" | "DATABASE PROPERTIES") {
        return None;
    }
    if let Some(parent) = e.is_attached().then(|| toc.parent_of(e)).flatten() {
        return decided
            .get(&parent.dump_id)
            .map(|_| format!("belongs to {}", parent.key()));
    }
    if let Some(schema) = home(toc, e)
        && is_platform_schema(schema)
    {
        return Some(format!("in the platform schema {schema}"));
    }
    match e.desc.as_str() {
        "EVENT TRIGGER" => {
            let dep_schema = e
                .deps
                .iter()
                .filter_map(|d| toc.get(*d))
                .filter(|d| matches!(d.desc.as_str(), "FUNCTION" | "PROCEDURE"))
                .find_map(|d| d.namespace.clone());
            let schema = dep_schema.or_else(|| event_trigger_function_schema(&e.defn))?;
            is_platform_schema(&schema).then(|| {
                format!(
                    "calls a function of the platform schema {schema}, as every new project's does"
                )
            })
        }
        "PUBLICATION" => PLATFORM_PUBLICATIONS
            .contains(&e.tag.as_str())
            .then(|| "Supabase Realtime's publication (its tables are kept)".to_owned()),
        "DEFAULT ACL" => {
            let role = e.owner.as_deref()?;
            (supabase::is_reserved_role(role) && role != "postgres")
                .then(|| format!("default privileges of the platform role {role}"))
        }
        _ => None,
    }
}

/// Every platform entry of `toc`, with the reason, by dump id.
pub fn classify(toc: &Toc) -> BTreeMap<i32, String> {
    let mut out = BTreeMap::new();
    for e in &toc.entries {
        if let Some(r) = reason(toc, e, &out) {
            out.insert(e.dump_id, r);
        }
    }
    // Comments of extensions that live in a platform schema: the extension
    // brings its own (and only its owner may change it).
    for e in &toc.entries {
        if e.desc != "COMMENT" || out.contains_key(&e.dump_id) {
            continue;
        }
        if let Some(ext) = toc.parent_of(e).filter(|p| p.desc == "EXTENSION")
            && let Some(schema) = extension_schema(&ext.defn)
            && is_platform_schema(&schema)
        {
            out.insert(
                e.dump_id,
                format!(
                    "the comment of extension {}, which lives in {schema}",
                    ext.tag
                ),
            );
        }
    }
    out
}

/// What the manifest records as left out of `schema.sql`: each
/// database-wide entry with its reason, and one line per platform schema.
pub fn left_out_summary(toc: &Toc, platform: &BTreeMap<i32, String>) -> Vec<String> {
    let mut per_schema: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for e in &toc.entries {
        let Some(why) = platform.get(&e.dump_id) else {
            continue;
        };
        match home(toc, e).filter(|s| is_platform_schema(s)) {
            Some(schema) => *per_schema.entry(schema.to_owned()).or_default() += 1,
            None => out.push(format!("{}: {why}", e.key())),
        }
    }
    for (schema, n) in per_schema {
        out.push(format!(
            "schema {schema}: {n} platform entr{} (a new project has them; user objects in it are restored from schema.dump)",
            if n == 1 { "y" } else { "ies" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pg::archive::Section;

    fn entry(
        id: i32,
        desc: &str,
        ns: Option<&str>,
        tag: &str,
        owner: &str,
        deps: &[i32],
        defn: &str,
    ) -> Entry {
        Entry {
            dump_id: id,
            had_dumper: false,
            table_oid: 0,
            oid: 0,
            tag: tag.into(),
            desc: desc.into(),
            section: Section::PreData,
            effective_section: Section::PreData,
            defn: defn.into(),
            drop_stmt: String::new(),
            namespace: ns.map(str::to_owned),
            owner: (!owner.is_empty()).then(|| owner.to_owned()),
            deps: deps.to_vec(),
        }
    }

    fn toc(entries: Vec<Entry>) -> Toc {
        Toc {
            version: (1, 14, 0),
            database: "db".into(),
            server_version: "15".into(),
            dump_version: "15".into(),
            entries,
        }
    }

    #[test]
    fn platform_by_content_not_owner() {
        let t = toc(vec![
            entry(1, "SCHEMA", None, "extensions", "postgres", &[], ""),
            entry(
                2,
                "FUNCTION",
                Some("extensions"),
                "grant_pg_net_access()",
                "postgres",
                &[1],
                "",
            ),
            entry(
                3,
                "EVENT TRIGGER",
                None,
                "issue_pg_net_access",
                "postgres",
                &[2],
                "CREATE EVENT TRIGGER \"issue_pg_net_access\" ON \"ddl_command_end\" EXECUTE FUNCTION \"extensions\".\"grant_pg_net_access\"();",
            ),
            entry(
                4,
                "FUNCTION",
                Some("public"),
                "audit()",
                "supabase_admin",
                &[],
                "",
            ),
            entry(
                5,
                "EVENT TRIGGER",
                None,
                "my_audit",
                "supabase_admin",
                &[4],
                "CREATE EVENT TRIGGER \"my_audit\" ON \"ddl_command_end\" EXECUTE FUNCTION \"public\".\"audit\"();",
            ),
            // A function not in the archive (e.g. an extension's): the definition says where.
            entry(
                6,
                "EVENT TRIGGER",
                None,
                "pgrst_ddl_watch",
                "supabase_admin",
                &[],
                "CREATE EVENT TRIGGER \"pgrst_ddl_watch\" ON \"ddl_command_end\" EXECUTE FUNCTION \"extensions\".\"pgrst_ddl_watch\"();",
            ),
            entry(
                7,
                "PUBLICATION",
                None,
                "supabase_realtime",
                "postgres",
                &[],
                "",
            ),
            entry(
                8,
                "PUBLICATION TABLE",
                Some("public"),
                "supabase_realtime messages",
                "postgres",
                &[7],
                "",
            ),
            entry(
                9,
                "DEFAULT ACL",
                Some("public"),
                "DEFAULT PRIVILEGES FOR TABLES",
                "supabase_admin",
                &[],
                "",
            ),
            entry(
                10,
                "DEFAULT ACL",
                Some("public"),
                "DEFAULT PRIVILEGES FOR TABLES",
                "postgres",
                &[],
                "",
            ),
            entry(
                11,
                "EXTENSION",
                None,
                "citext",
                "",
                &[1],
                "CREATE EXTENSION IF NOT EXISTS \"citext\" WITH SCHEMA \"extensions\";",
            ),
            entry(12, "COMMENT", None, "EXTENSION citext", "", &[11], ""),
            entry(
                13,
                "ACL",
                Some("pg_catalog"),
                "FUNCTION lo_export(oid, text)",
                "supabase_admin",
                &[],
                "",
            ),
            entry(14, "ACL", None, "SCHEMA extensions", "postgres", &[1], ""),
            entry(
                15,
                "TRIGGER",
                Some("auth"),
                "users on_auth_user_created",
                "supabase_auth_admin",
                &[],
                "",
            ),
        ]);
        let p = classify(&t);
        let ids: Vec<i32> = p.keys().copied().collect();
        assert_eq!(ids, [1, 2, 3, 6, 7, 9, 12, 13, 14, 15]);
        assert!(p[&3].contains("extensions"), "{}", p[&3]);
        let summary = left_out_summary(&t, &p);
        assert!(
            summary
                .iter()
                .any(|l| l.starts_with("event trigger issue_pg_net_access: calls")),
            "{summary:?}"
        );
        assert!(
            summary
                .iter()
                .any(|l| l.starts_with("schema extensions: 3 platform entries")),
            "{summary:?}"
        );
    }

    #[test]
    fn reads_schemas_out_of_definitions() {
        assert_eq!(
            event_trigger_function_schema(
                "CREATE EVENT TRIGGER x ON ddl_command_end EXECUTE FUNCTION \"we\"\"ird\".\"f\"();"
            )
            .as_deref(),
            Some("we\"ird")
        );
        assert_eq!(
            event_trigger_function_schema(
                "CREATE EVENT TRIGGER x ON sql_drop EXECUTE PROCEDURE ext.f();"
            )
            .as_deref(),
            Some("ext")
        );
        assert_eq!(
            event_trigger_function_schema("... EXECUTE FUNCTION \"f\"();"),
            None
        );
        assert_eq!(
            extension_schema(
                "CREATE EXTENSION IF NOT EXISTS \"pg_trgm\" WITH SCHEMA \"extensions\";"
            )
            .as_deref(),
            Some("extensions")
        );
    }
}
