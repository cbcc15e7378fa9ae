//! Leaving platform objects out of `schema.sql`, exactly: the schema is
//! dumped as a custom-format archive, its table of contents is listed with
//! `pg_restore -l`, the platform's own database-wide objects are commented
//! out of that list, and `pg_restore -L` writes the plain SQL. No text of
//! the SQL itself is ever rewritten.
//!
//! Left out (a Supabase project already has them, and re-creating them
//! fails): the Realtime publications (their table memberships are kept) and
//! event triggers owned by platform roles.

use crate::engine::supabase;

/// Publications every Supabase project has.
pub const PLATFORM_PUBLICATIONS: &[&str] = &[
    "supabase_realtime",
    "supabase_realtime_messages_publication",
];

/// Why an entry of a `pg_restore -l` listing is left out, if it is.
pub fn exclusion(line: &str) -> Option<String> {
    let line = line.trim_end();
    if line.starts_with(';') || line.is_empty() {
        return None;
    }
    // "<dumpId>; <tableoid> <oid> <TYPE...> <schema> <name...> <owner>"
    let (_, rest) = line.split_once("; ")?;
    let mut words = rest.split(' ');
    let _tableoid = words.next()?;
    let _oid = words.next()?;
    let tail: Vec<&str> = words.collect();
    let text = tail.join(" ");
    if let Some(after) = text.strip_prefix("PUBLICATION - ") {
        // "<name> <owner>"; publication names cannot hold spaces in the
        // listing without being ambiguous, so the platform names are matched whole.
        let (name, _owner) = after.rsplit_once(' ')?;
        if PLATFORM_PUBLICATIONS.contains(&name) {
            return Some(format!("PUBLICATION {name}"));
        }
        return None;
    }
    if let Some(after) = text.strip_prefix("DEFAULT ACL ") {
        // Default privileges the platform set for its own roles.
        let (_, owner) = after.rsplit_once(' ')?;
        if supabase::is_reserved_role(owner) && owner != "postgres" {
            return Some(format!("DEFAULT ACL {after}"));
        }
        return None;
    }
    if let Some(after) = text.strip_prefix("EVENT TRIGGER - ") {
        let (name, owner) = after.rsplit_once(' ')?;
        if supabase::is_reserved_role(owner) && owner != "postgres" {
            return Some(format!("EVENT TRIGGER {name} (owner {owner})"));
        }
    }
    None
}

/// Comments out the excluded entries of a listing; returns the new listing
/// and what was left out.
pub fn filter_listing(listing: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(listing.len());
    let mut left_out = Vec::new();
    for line in listing.lines() {
        match exclusion(line) {
            Some(what) => {
                out.push(';');
                out.push_str(line);
                left_out.push(what);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    (out, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = ";
; Archive created at 2026-11-26 06:23:32 UTC
;     dbname: fx
;
3890; 0 0 ENCODING - ENCODING
3891; 0 0 STDSTRINGS - STDSTRINGS
7; 2615 16402 SCHEMA - billing postgres
3; 3079 16386 EXTENSION - citext
3892; 0 0 COMMENT - EXTENSION citext
4001; 6104 16999 PUBLICATION - supabase_realtime postgres
4002; 6106 17000 PUBLICATION TABLE public supabase_realtime messages postgres
4003; 6104 17001 PUBLICATION - my_pub postgres
4010; 3466 17100 EVENT TRIGGER - pgrst_ddl_watch supabase_admin
4011; 3466 17101 EVENT TRIGGER - my_audit_trigger postgres
";

    #[test]
    fn comments_out_exactly_the_platform_entries() {
        let (out, left) = filter_listing(LISTING);
        assert_eq!(
            left,
            [
                "PUBLICATION supabase_realtime",
                "EVENT TRIGGER pgrst_ddl_watch (owner supabase_admin)"
            ]
        );
        assert!(out.contains("\n;4001; 6104 16999 PUBLICATION - supabase_realtime postgres\n"));
        assert!(out.contains(
            "\n4002; 6106 17000 PUBLICATION TABLE public supabase_realtime messages postgres\n"
        ));
        assert!(out.contains("\n4003; 6104 17001 PUBLICATION - my_pub postgres\n"));
        assert!(
            out.contains("\n;4010; 3466 17100 EVENT TRIGGER - pgrst_ddl_watch supabase_admin\n")
        );
        assert!(out.contains("\n4011; 3466 17101 EVENT TRIGGER - my_audit_trigger postgres\n"));
        assert_eq!(out.lines().count(), LISTING.lines().count());
    }
}

/// pg_dump's entry types (`te->desc`), longest first so multi-word types win.
const TYPES: &[&str] = &[
    "PUBLICATION TABLES IN SCHEMA",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "TEXT SEARCH TEMPLATE",
    "FOREIGN DATA WRAPPER",
    "TEXT SEARCH PARSER",
    "PROCEDURAL LANGUAGE",
    "MATERIALIZED VIEW DATA",
    "DATABASE PROPERTIES",
    "SUBSCRIPTION TABLE",
    "MATERIALIZED VIEW",
    "PUBLICATION TABLE",
    "SEQUENCE OWNED BY",
    "CHECK CONSTRAINT",
    "OPERATOR FAMILY",
    "FOREIGN SERVER",
    "OPERATOR CLASS",
    "SECURITY LABEL",
    "EVENT TRIGGER",
    "FK CONSTRAINT",
    "FOREIGN TABLE",
    "ACCESS METHOD",
    "INDEX ATTACH",
    "LARGE OBJECT",
    "SEQUENCE SET",
    "TABLE ATTACH",
    "USER MAPPING",
    "ROW SECURITY",
    "DEFAULT ACL",
    "DUMMY TYPE",
    "SHELL TYPE",
    "TABLE DATA",
    "BLOB DATA",
    "CONSTRAINT",
    "CONVERSION",
    "SEARCHPATH",
    "STATISTICS",
    "STDSTRINGS",
    "SUBSCRIPTION",
    "PUBLICATION",
    "AGGREGATE",
    "COLLATION",
    "EXTENSION",
    "PROCEDURE",
    "TRANSFORM",
    "ENCODING",
    "FUNCTION",
    "OPERATOR",
    "SEQUENCE",
    "DATABASE",
    "COMMENT",
    "DEFAULT",
    "TRIGGER",
    "DOMAIN",
    "POLICY",
    "SCHEMA",
    "SERVER",
    "BLOBS",
    "INDEX",
    "TABLE",
    "BLOB",
    "CAST",
    "RULE",
    "TYPE",
    "VIEW",
    "ACL",
];

/// One line of a `pg_restore -l` listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry<'a> {
    pub kind: &'static str,
    /// The schema, or `-` for objects outside schemas.
    pub namespace: &'a str,
    /// Name and owner, as listed (e.g. `SCHEMA billing postgres` for an ACL).
    pub rest: &'a str,
}

/// Parses a listing line; comments and unknown shapes give `None`.
pub fn parse_entry(line: &str) -> Option<TocEntry<'_>> {
    let line = line.trim_end();
    if line.starts_with(';') || line.is_empty() {
        return None;
    }
    let (_, rest) = line.split_once("; ")?;
    let mut it = rest.splitn(3, ' ');
    let _tableoid = it.next()?;
    let _oid = it.next()?;
    let text = it.next()?;
    let kind = TYPES
        .iter()
        .find(|t| text.starts_with(*t) && text[t.len()..].starts_with(' '))?;
    let after = &text[kind.len() + 1..];
    let (namespace, rest) = after.split_once(' ').unwrap_or((after, ""));
    Some(TocEntry {
        kind,
        namespace,
        rest,
    })
}

impl TocEntry<'_> {
    /// The schema an entry belongs to: its namespace, or for a schema (and
    /// its ACL, comment, label) the schema's own name.
    pub fn schema(&self) -> Option<&str> {
        if self.namespace != "-" {
            return Some(self.namespace);
        }
        let first = self.rest.split(' ').next()?;
        match self.kind {
            "SCHEMA" => Some(first),
            "ACL" | "COMMENT" | "SECURITY LABEL" => {
                // With --quote-all-identifiers the tag is `SCHEMA "name"`.
                let after = self.rest.strip_prefix("SCHEMA ")?;
                if let Some(quoted) = after.strip_prefix('"') {
                    let end = quoted.find("\" ").or_else(|| quoted.rfind('"'))?;
                    return Some(&quoted[..end]).filter(|n| !n.contains("\"\""));
                }
                after.split(' ').next()
            }
            _ => None,
        }
    }

    /// Session settings every script needs.
    pub fn is_setting(&self) -> bool {
        matches!(self.kind, "ENCODING" | "STDSTRINGS" | "SEARCHPATH")
    }
}

/// Comments out every entry of a listing that `keep` rejects (and the
/// platform exclusions); comments and unparsable lines are kept as they are.
pub fn select_listing(listing: &str, keep: &dyn Fn(&TocEntry<'_>) -> bool) -> String {
    let mut out = String::with_capacity(listing.len());
    for line in listing.lines() {
        let drop = match parse_entry(line) {
            Some(e) => exclusion(line).is_some() || !(e.is_setting() || keep(&e)),
            None => false,
        };
        if drop && !line.starts_with(';') {
            out.push(';');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod listing_tests {
    use super::*;

    #[test]
    fn parses_entries_and_their_schema() {
        let e = parse_entry(
            "4002; 6106 17000 PUBLICATION TABLE public supabase_realtime messages postgres",
        )
        .expect("entry");
        assert_eq!(
            (e.kind, e.namespace, e.schema()),
            ("PUBLICATION TABLE", "public", Some("public"))
        );
        let e = parse_entry("7; 2615 16402 SCHEMA - billing postgres").expect("schema");
        assert_eq!(e.schema(), Some("billing"));
        let e = parse_entry("4100; 0 0 ACL - SCHEMA billing postgres").expect("acl");
        assert_eq!(e.schema(), Some("billing"));
        let e = parse_entry("3972; 0 0 COMMENT - SCHEMA \"billing\" postgres").expect("quoted");
        assert_eq!(e.schema(), Some("billing"));
        let e = parse_entry("3892; 0 0 COMMENT - EXTENSION citext").expect("comment");
        assert_eq!(e.schema(), None);
        let e = parse_entry("250; 1259 17200 MATERIALIZED VIEW public product_sales_mv postgres")
            .expect("mv");
        assert_eq!(e.kind, "MATERIALIZED VIEW");
        let e = parse_entry("251; 1259 17201 TABLE DATA public orders postgres").expect("data");
        assert_eq!(e.kind, "TABLE DATA");
        assert!(parse_entry("; comment").is_none());
    }

    #[test]
    fn selects_by_schema_and_keeps_settings() {
        let listing = "3890; 0 0 ENCODING - ENCODING\n\
7; 2615 16402 SCHEMA - billing postgres\n\
8; 1259 16500 TABLE billing invoices postgres\n\
9; 1259 16600 TABLE public orders postgres\n\
10; 0 0 ACL - SCHEMA billing postgres\n\
4001; 6104 16999 PUBLICATION - supabase_realtime postgres\n";
        let out = select_listing(listing, &|e| e.schema() == Some("billing"));
        let kept: Vec<&str> = out.lines().filter(|l| !l.starts_with(';')).collect();
        assert_eq!(
            kept,
            [
                "3890; 0 0 ENCODING - ENCODING",
                "7; 2615 16402 SCHEMA - billing postgres",
                "8; 1259 16500 TABLE billing invoices postgres",
                "10; 0 0 ACL - SCHEMA billing postgres"
            ]
        );
        let all = select_listing(listing, &|_| true);
        assert!(
            all.contains("\n;4001; 6104 16999 PUBLICATION - supabase_realtime postgres\n"),
            "platform entries never come back"
        );
    }
}
