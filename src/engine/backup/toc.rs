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
