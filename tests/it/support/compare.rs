//! Compares two databases of the shared test cluster object by object and
//! lists EVERY difference (catalog and data), to judge restores: after
//! restoring a backup of the fixture into a `platform_only` database, the
//! target must equal the source.
//!
//! How it works: one `psql` run per database executes catalog queries that
//! print `object \x1f aspect \x1f value \x1e` lines (values escaped onto one
//! line: `\\`, `\n`, `\r`, `\x1f`, `\x1e`), plus per-table data digests
//! generated with `\gexec`.  Both outputs become maps
//! `object -> aspect -> value` ([`Snapshot`]) which are diffed.  Objects are
//! named like PostgreSQL's `pg_identify_object()` does ("table public.orders",
//! "table column public.profiles.avatar_url", "function
//! public.order_total(bigint)", "policy \"x\" on public.orders", "index
//! public.orders_pkey", "default acl for role postgres in schema billing on
//! tables", ...).  An object present on one side only is ONE diff with aspect
//! `exists` (its other aspects are not listed); an aspect present on one
//! side only shows `(absent)` on the other.  A NULL value = absent aspect.
//! Names and definitions never contain OIDs, so two loads of the same SQL
//! compare equal.  The session pins `search_path = ''` (every name printed
//! schema-qualified), `TimeZone`, `DateStyle`, `IntervalStyle`,
//! `extra_float_digits` and `bytea_output`, so text forms do not depend on
//! per-database settings.
//!
//! Scope (`CompareOptions::schemas`): `None` = every schema except
//! `pg_catalog`, `information_schema`, `pg_toast*` and `pg_temp*`.  That
//! deliberately INCLUDES the platform-managed schemas (auth, storage,
//! realtime, vault, extensions, graphql_public, supabase_functions,
//! supabase_migrations, ...): a restore must not break them, and user
//! objects live there too (policies on storage.objects, triggers on
//! auth.users).  `Some(list)` = only those schemas.  Database-wide objects
//! (extensions, publications, event triggers, casts, languages, foreign data
//! wrappers/servers, large objects, global default ACLs) are always compared;
//! publication members only for tables in the compared schemas.
//!
//! Compared:
//! * schemas: owner, ACL;
//! * relations (tables, partitioned tables, partitions, views, materialized
//!   views, sequences, foreign tables): owner, relkind, persistence (unlogged),
//!   ACL, RLS enabled/forced, replica identity (+ index), reloptions, column
//!   list in order, partition key/bound, inheritance parents, view/matview
//!   definition, matview populated, foreign table server/options;
//! * columns: type, not null, default, generated expression, identity,
//!   non-default collation, column ACL, attoptions;
//! * constraints (`pg_get_constraintdef`, tables and domains), indexes
//!   (`pg_get_indexdef`, clustered, valid), triggers (`pg_get_triggerdef`,
//!   enabled state; internal FK triggers are skipped since their names hold
//!   OIDs), rules (`pg_get_ruledef`, enabled);
//! * policies: command, permissive/restrictive, roles, USING, WITH CHECK;
//! * functions/procedures/aggregates: owner, ACL, arguments, result,
//!   language, security definer, volatility, strict, leakproof, parallel,
//!   cost, rows, proconfig, md5 of prosrc, full `pg_get_functiondef`;
//! * types: kind, owner, ACL, enum labels in order, domain base
//!   type/not null/default/collation (domain constraints are constraints),
//!   composite attributes, range subtype;
//! * sequences: data type, start, increment, min, max, cache, cycle, owned
//!   by, and the state `last_value`/`is_called`;
//! * comments on every object in scope (`pg_description`), roles' comments;
//! * publications: owner, all-tables, operations, via-root, and one aspect
//!   per member table (with its column list and row filter);
//! * extensions: schema, version, owner;
//! * event triggers (the platform's too): event, owner, enabled, tags,
//!   function;
//! * default privileges (`pg_default_acl`), global and per compared schema;
//! * other user objects (operators, operator classes/families, collations,
//!   extended statistics, text search objects, conversions, casts, languages,
//!   foreign data wrappers/servers, user mappings, transforms, access
//!   methods, large objects): existence, plus large object owner/ACL/content
//!   digest and extended statistics definition;
//! * roles (`include_roles`), except platform roles ([`is_platform_role`]):
//!   attributes, connection limit, valid until, rolconfig, settings for the
//!   current database, comment, memberships both ways (`member of X` /
//!   `has member Y`, with admin option);
//! * data: for every table, partitioned table (all its partitions' rows) and
//!   populated materialized view in scope: row count and an
//!   order-independent digest `md5(string_agg(md5(row::text) ORDER BY 1))`.
//!
//! Deliberately NOT compared:
//! * data of `realtime`, `vault` and `extensions` ([`DATA_SKIPPED_SCHEMAS`]):
//!   a Supabase dump never carries it (realtime state, project-key-encrypted
//!   secrets, extension-owned data); their catalog IS compared;
//! * data of `auth.schema_migrations`, `storage.migrations`,
//!   `supabase_functions.migrations` ([`DATA_SKIPPED_TABLES`]): platform
//!   bookkeeping, the target already has its own rows; sequence state is
//!   skipped for sequences in skipped schemas or owned by skipped tables;
//! * objects that belong to an extension (`pg_depend` deptype `e`): only
//!   their ACL is compared; the rest is implied by extension name + version;
//! * OIDs, statistics (`ANALYZE`), tablespaces, storage parameters of
//!   columns (storage/compression/statistics target), the sequence `log_cnt`,
//!   internal triggers (FK enforcement; covered by the FK constraint);
//! * the `pg_attver=<n>` entry that the test cluster's PostgreSQL build puts
//!   into every column's `attoptions`: it differs between two loads of the
//!   same SQL, so it is filtered out (other attoptions are compared);
//! * ACL equivalences: ACLs are compared as sorted aclitem text, grantor
//!   included; only a NULL ACL is normalised (to its `acldefault`, i.e. the
//!   effective privileges), a NULL column ACL counts as "no column grants";
//! * database-level properties (owner, ACL, `ALTER DATABASE ... SET`, per
//!   database role settings of other databases): database names differ
//!   and a schema/data restore does not carry them;
//! * passwords of roles.

// Not every test uses every helper.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;

use super::pg::TestDb;

/// Schemas whose catalog is compared but whose data is not.
pub const DATA_SKIPPED_SCHEMAS: &[&str] = &["realtime", "vault", "extensions"];

/// Tables whose data is not compared (platform bookkeeping; the target has its own rows).
pub const DATA_SKIPPED_TABLES: &[(&str, &str)] = &[
    ("auth", "schema_migrations"),
    ("storage", "migrations"),
    ("supabase_functions", "migrations"),
];

/// Fixed platform role names (plus every `supabase_*` and `pg_*` role).
pub const PLATFORM_ROLES: &[&str] = &[
    "anon",
    "authenticated",
    "service_role",
    "authenticator",
    "dashboard_user",
    "pgbouncer",
    "postgres",
];

/// Whether a role is created by the platform (and therefore not compared).
pub fn is_platform_role(name: &str) -> bool {
    PLATFORM_ROLES.contains(&name) || name.starts_with("supabase_") || name.starts_with("pg_")
}

/// One difference between source and target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// e.g. `table public.orders`
    pub object: String,
    /// e.g. `acl`, `data`, `exists`, `comment`
    pub aspect: String,
    /// Value in the source (`(absent)` when the aspect/object is missing there).
    pub source: String,
    /// Value in the target (`(absent)` when the aspect/object is missing there).
    pub target: String,
}

/// Placeholder for a value that is missing on one side.
pub const ABSENT: &str = "(absent)";

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, t) = abbreviate(&one_line(&self.source), &one_line(&self.target));
        write!(
            f,
            "{} [{}]: source: {} | target: {}",
            one_line(&self.object),
            one_line(&self.aspect),
            s,
            t
        )
    }
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// `None` = every non-system schema (user schemas and platform schemas;
    /// data of [`DATA_SKIPPED_SCHEMAS`]/[`DATA_SKIPPED_TABLES`] excluded).
    /// `Some(list)` = only these schemas (same data exclusions).
    pub schemas: Option<Vec<String>>,
    /// Compare non-platform roles (attributes, settings, memberships).
    pub include_roles: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            schemas: None,
            include_roles: true,
        }
    }
}

/// `object -> aspect -> value` of one database.
pub type Snapshot = BTreeMap<String, BTreeMap<String, String>>;

/// Every difference between `source` and `target`, sorted by object and aspect.
pub fn compare(source: &TestDb, target: &TestDb, opts: &CompareOptions) -> Vec<Diff> {
    // Roles are cluster-wide: other tests must not create one between the
    // two snapshots.
    let _roles = opts.include_roles.then(crate::support::pg::roles_lock);
    diff_snapshots(&snapshot(source, opts), &snapshot(target, opts))
}

/// Panics listing ALL differences, one per line, when there is any.
pub fn assert_same(source: &TestDb, target: &TestDb, opts: &CompareOptions) {
    let diffs = compare(source, target, opts);
    if !diffs.is_empty() {
        panic!("{}", report(source, target, &diffs));
    }
}

/// The message of [`assert_same`]: a header line, then one line per diff.
pub fn report(source: &TestDb, target: &TestDb, diffs: &[Diff]) -> String {
    let mut msg = format!(
        "database {:?} (target) differs from {:?} (source): {} difference(s):",
        target.name,
        source.name,
        diffs.len()
    );
    for d in diffs {
        msg.push('\n');
        msg.push_str(&d.to_string());
    }
    msg
}

/// Diffs two snapshots.
pub fn diff_snapshots(source: &Snapshot, target: &Snapshot) -> Vec<Diff> {
    let mut out = Vec::new();
    let mut objects: Vec<&String> = source.keys().chain(target.keys()).collect();
    objects.sort();
    objects.dedup();
    for object in objects {
        match (source.get(object), target.get(object)) {
            (Some(s), Some(t)) => {
                let mut aspects: Vec<&String> = s.keys().chain(t.keys()).collect();
                aspects.sort();
                aspects.dedup();
                for aspect in aspects {
                    let sv = s.get(aspect).map_or(ABSENT, String::as_str);
                    let tv = t.get(aspect).map_or(ABSENT, String::as_str);
                    if sv != tv {
                        out.push(Diff {
                            object: object.clone(),
                            aspect: aspect.clone(),
                            source: sv.to_string(),
                            target: tv.to_string(),
                        });
                    }
                }
            }
            (Some(_), None) => out.push(Diff {
                object: object.clone(),
                aspect: "exists".to_string(),
                source: "yes".to_string(),
                target: ABSENT.to_string(),
            }),
            (None, Some(_)) => out.push(Diff {
                object: object.clone(),
                aspect: "exists".to_string(),
                source: ABSENT.to_string(),
                target: "yes".to_string(),
            }),
            (None, None) => unreachable!("object comes from one of the maps"),
        }
    }
    out
}

/// Reads the catalog and data digests of `db`.
pub fn snapshot(db: &TestDb, opts: &CompareOptions) -> Snapshot {
    let script = build_script(opts);
    let out = db.psql(&script);
    parse_output(&out).unwrap_or_else(|e| {
        panic!(
            "compare: unexpected output of the catalog queries in {}: {e}",
            db.name
        )
    })
}

fn parse_output(out: &str) -> Result<Snapshot, String> {
    let mut snap = Snapshot::new();
    for record in out.split('\u{1e}') {
        // Records are separated by "\x1e\n"; psql's output is trimmed at the end.
        let record = record.strip_prefix('\n').unwrap_or(record);
        if record.is_empty() {
            continue;
        }
        let mut parts = record.splitn(3, '\u{1f}');
        let (Some(object), Some(aspect), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("malformed line {record:?}"));
        };
        let (object, aspect, value) = (unescape(object)?, unescape(aspect)?, unescape(value)?);
        let aspects = snap.entry(object).or_default();
        match aspects.get_mut(&aspect) {
            // Never drop a value silently (two rows for the same aspect).
            Some(existing) => {
                existing.push_str(" | ");
                existing.push_str(&value);
            }
            None => {
                aspects.insert(aspect, value);
            }
        }
    }
    Ok(snap)
}

/// Reverses the escaping done by [`esc`] in SQL.
fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('x') => match (chars.next(), chars.next()) {
                (Some('1'), Some('f')) => out.push('\u{1f}'),
                (Some('1'), Some('e')) => out.push('\u{1e}'),
                other => return Err(format!("bad escape \\x{other:?} in {s:?}")),
            },
            other => return Err(format!("bad escape \\{other:?} in {s:?}")),
        }
    }
    Ok(out)
}

/// Makes a value printable on one line: control characters become escapes
/// (`\n`, `\r`, `\t`, `\u{..}`).
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// Shortens two long values around their first difference so that a diff
/// stays one readable line.
fn abbreviate(a: &str, b: &str) -> (String, String) {
    const MAX: usize = 240;
    const BEFORE: usize = 60;
    if a.chars().count() <= MAX && b.chars().count() <= MAX {
        return (a.to_string(), b.to_string());
    }
    let first_diff = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let start = first_diff.saturating_sub(BEFORE);
    let cut = |s: &str| {
        let total = s.chars().count();
        let body: String = s.chars().skip(start).take(MAX).collect();
        let mut r = String::new();
        if start > 0 {
            r.push('…');
        }
        r.push_str(&body);
        if start + MAX < total {
            r.push('…');
        }
        if start > 0 || start + MAX < total {
            r.push_str(&format!(" ({total} chars)"));
        }
        r
    };
    (cut(a), cut(b))
}

// ---------------------------------------------------------------------------
// SQL
// ---------------------------------------------------------------------------

/// SQL string literal (standard_conforming_strings is on).
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn lit_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().map(lit).collect::<Vec<_>>().join(", ")
}

/// SQL expression escaping a text onto one output line.
fn esc(expr: &str) -> String {
    format!(
        "replace(replace(replace(replace(replace({expr}, '\\', '\\\\'), chr(10), '\\n'), \
         chr(13), '\\r'), chr(31), '\\x1f'), chr(30), '\\x1e')"
    )
}

/// Filter on `n.nspname` selecting the compared schemas.
fn nsp_filter(opts: &CompareOptions) -> String {
    match &opts.schemas {
        None => "(n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%')"
            .to_string(),
        Some(list) if list.is_empty() => "false".to_string(),
        Some(list) => format!(
            "n.nspname IN ({})",
            lit_list(list.iter().map(String::as_str))
        ),
    }
}

/// Filter on `n.nspname`/`c.relname` (and `c.oid` for sequences) excluding
/// the data that is not compared.
fn data_filter() -> String {
    let tables = DATA_SKIPPED_TABLES
        .iter()
        .map(|(s, t)| format!("({}, {})", lit(s), lit(t)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "n.nspname NOT IN ({schemas}) \
         AND (n.nspname, c.relname) NOT IN ({tables}) \
         AND NOT EXISTS (SELECT 1 FROM pg_depend d \
             JOIN pg_class oc ON oc.oid = d.refobjid \
             JOIN pg_namespace onsp ON onsp.oid = oc.relnamespace \
             WHERE c.relkind = 'S' AND d.classid = 'pg_class'::regclass AND d.objid = c.oid \
               AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') \
               AND (onsp.nspname IN ({schemas}) OR (onsp.nspname, oc.relname) IN ({tables})))",
        schemas = lit_list(DATA_SKIPPED_SCHEMAS.iter().copied()),
    )
}

/// `acl` sorted as text; a NULL acl is replaced by `acldefault(kind, owner)`
/// (`kind` is an SQL expression of type "char", e.g. `'n'`).
fn acl(acl: &str, kind: &str, owner: &str) -> String {
    format!(
        "array_to_string(ARRAY(SELECT x::text FROM unnest(coalesce({acl}, acldefault({kind}, {owner}))) x ORDER BY 1), ',')"
    )
}

/// `type identity` of an object, as pg_identify_object names it.
fn obj(catalog: &str, oid: &str, sub: &str) -> String {
    format!(
        "(SELECT o.type || ' ' || o.identity FROM pg_identify_object('{catalog}'::regclass, {oid}, {sub}) o)"
    )
}

fn ext_member(catalog: &str, oid: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass \
         AND e.objid = {oid} AND e.deptype = 'e')"
    )
}

/// Wraps a query returning `(object, aspect, value)` into one output line per row.
fn wrap(query: &str) -> String {
    format!(
        "SELECT {} || chr(31) || {} || chr(31) || {} || chr(30)\nFROM (\n{query}\n) AS q(o, a, v)\nWHERE q.v IS NOT NULL AND q.o IS NOT NULL;\n",
        esc("q.o"),
        esc("q.a"),
        esc("q.v::text")
    )
}

fn build_script(opts: &CompareOptions) -> String {
    let nsp = nsp_filter(opts);
    let mut sql = String::from(
        "SET client_min_messages = warning;\n\
         SET search_path = '';\n\
         SET standard_conforming_strings = on;\n\
         SET TimeZone = 'UTC';\n\
         SET DateStyle = 'ISO, YMD';\n\
         SET IntervalStyle = 'postgres';\n\
         SET extra_float_digits = 3;\n\
         SET bytea_output = 'hex';\n\
         SET lc_monetary = 'C';\n\
         SET lc_numeric = 'C';\n\
         SET jit = off;\n\
         SET statement_timeout = 0;\n",
    );
    let queries = catalog_queries(opts);
    for q in &queries {
        sql.push_str(&wrap(&q.replace("@NSP@", &nsp)));
    }
    sql.push_str(&data_script(&nsp));
    sql
}

fn catalog_queries(opts: &CompareOptions) -> Vec<String> {
    let mut q = Vec::new();

    // --- schemas -----------------------------------------------------------
    q.push(format!(
        "SELECT {obj}, x.k, x.v FROM pg_namespace n CROSS JOIN LATERAL (VALUES \
           ('owner', pg_get_userbyid(n.nspowner)::text), \
           ('acl', {acl})) x(k, v) \
         WHERE @NSP@",
        obj = obj("pg_namespace", "n.oid", "0"),
        acl = acl("n.nspacl", "'n'", "n.nspowner"),
    ));

    // --- relations ---------------------------------------------------------
    let rel_acl = acl(
        "c.relacl",
        "(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::\"char\"",
        "c.relowner",
    );
    q.push(format!(
        "SELECT {obj}, x.k, x.v \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN LATERAL (SELECT {member} AS member) m \
         CROSS JOIN LATERAL (VALUES \
           ('owner', pg_get_userbyid(c.relowner)::text), \
           ('relkind', c.relkind::text), \
           ('persistence', c.relpersistence::text), \
           ('acl', {rel_acl}), \
           ('row level security', c.relrowsecurity::text), \
           ('force row level security', c.relforcerowsecurity::text), \
           ('replica identity', c.relreplident::text || coalesce(' using index ' || \
               (SELECT quote_ident(ic.relname) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
                WHERE i.indrelid = c.oid AND i.indisreplident), '')), \
           ('options', nullif(array_to_string(ARRAY(SELECT unnest(c.reloptions) ORDER BY 1), ','), '')), \
           ('columns', (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) \
               FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)), \
           ('partition key', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END), \
           ('partition bound', pg_get_expr(c.relpartbound, c.oid)), \
           ('inherits', (SELECT string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno) \
               FROM pg_inherits i WHERE i.inhrelid = c.oid)), \
           ('definition', CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END), \
           ('populated', CASE WHEN c.relkind = 'm' THEN c.relispopulated::text END), \
           ('foreign server', (SELECT quote_ident(s.srvname) || coalesce(' ' || \
               array_to_string(ARRAY(SELECT unnest(ft.ftoptions) ORDER BY 1), ','), '') \
               FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver \
               WHERE ft.ftrelid = c.oid)) \
         ) x(k, v) \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND @NSP@ \
           AND (NOT m.member OR x.k = 'acl')",
        obj = obj("pg_class", "c.oid", "0"),
        member = ext_member("pg_class", "c.oid"),
    ));

    // --- columns -----------------------------------------------------------
    q.push(format!(
        "SELECT {obj}, x.k, x.v \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         CROSS JOIN LATERAL (VALUES \
           ('type', format_type(a.atttypid, a.atttypmod)), \
           ('not null', a.attnotnull::text), \
           ('default', CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END), \
           ('generated', CASE WHEN a.attgenerated <> '' THEN a.attgenerated::text || ' ' || pg_get_expr(d.adbin, d.adrelid) END), \
           ('identity', nullif(a.attidentity::text, '')), \
           ('collation', CASE WHEN a.attcollation <> t.typcollation THEN \
               (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co \
                JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END), \
           ('acl', nullif(array_to_string(ARRAY(SELECT x::text FROM unnest(a.attacl) x ORDER BY 1), ','), '')), \
           ('options', nullif(array_to_string(ARRAY(SELECT o FROM unnest(a.attoptions) o \
               WHERE o NOT LIKE 'pg\\_attver=%' ORDER BY 1), ','), '')) \
         ) x(k, v) \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
           AND @NSP@ AND NOT {member}",
        obj = obj("pg_class", "c.oid", "a.attnum"),
        member = ext_member("pg_class", "c.oid"),
    ));

    // --- sequences -----------------------------------------------------------
    q.push(format!(
        "SELECT {obj}, x.k, x.v \
         FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN LATERAL (VALUES \
           ('data type', format_type(s.seqtypid, NULL)), \
           ('start', s.seqstart::text), \
           ('increment', s.seqincrement::text), \
           ('min', s.seqmin::text), \
           ('max', s.seqmax::text), \
           ('cache', s.seqcache::text), \
           ('cycle', s.seqcycle::text), \
           ('owned by', (SELECT string_agg(d.refobjid::regclass::text || '.' || quote_ident(a.attname) \
               || ' (' || d.deptype::text || ')', ', ') \
               FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
               WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                 AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0)) \
         ) x(k, v) \
         WHERE @NSP@ AND NOT {member}",
        obj = obj("pg_class", "c.oid", "0"),
        member = ext_member("pg_class", "c.oid"),
    ));

    // --- constraints ---------------------------------------------------------
    q.push(format!(
        "SELECT {obj}, 'definition', pg_get_constraintdef(co.oid) \
         FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace \
         WHERE @NSP@ AND NOT {rel_member} AND NOT {type_member}",
        obj = obj("pg_constraint", "co.oid", "0"),
        rel_member = ext_member("pg_class", "co.conrelid"),
        type_member = ext_member("pg_type", "co.contypid"),
    ));

    // --- indexes -------------------------------------------------------------
    q.push(format!(
        "SELECT {obj}, x.k, x.v \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN LATERAL (VALUES \
           ('definition', pg_get_indexdef(i.indexrelid)), \
           ('clustered', i.indisclustered::text), \
           ('valid', i.indisvalid::text) \
         ) x(k, v) \
         WHERE @NSP@ AND NOT {member}",
        obj = obj("pg_class", "c.oid", "0"),
        member = ext_member("pg_class", "i.indrelid"),
    ));

    // --- triggers ------------------------------------------------------------
    q.push(format!(
        "SELECT {obj}, x.k, x.v \
         FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN LATERAL (VALUES \
           ('definition', pg_get_triggerdef(tg.oid)), \
           ('enabled', tg.tgenabled::text) \
         ) x(k, v) \
         WHERE NOT tg.tgisinternal AND @NSP@",
        obj = obj("pg_trigger", "tg.oid", "0"),
    ));

    // --- rules (not the _RETURN rules of views) ------------------------------
    q.push(format!(
        "SELECT {obj}, x.k, x.v \
         FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN LATERAL (VALUES \
           ('definition', pg_get_ruledef(r.oid)), \
           ('enabled', r.ev_enabled::text) \
         ) x(k, v) \
         WHERE r.rulename <> '_RETURN' AND @NSP@",
        obj = obj("pg_rewrite", "r.oid", "0"),
    ));

    // --- policies ------------------------------------------------------------
    q.push(format!(
        "SELECT {obj}, x.k, x.v \
         FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN LATERAL (VALUES \
           ('command', p.polcmd::text), \
           ('permissive', p.polpermissive::text), \
           ('roles', (SELECT string_agg(rn, ',' ORDER BY rn) FROM (SELECT CASE WHEN r = 0 THEN 'public' \
               ELSE quote_ident(pg_get_userbyid(r)) END AS rn FROM unnest(p.polroles) r) rr)), \
           ('using', pg_get_expr(p.polqual, p.polrelid)), \
           ('with check', pg_get_expr(p.polwithcheck, p.polrelid)) \
         ) x(k, v) \
         WHERE @NSP@",
        obj = obj("pg_policy", "p.oid", "0"),
    ));

    // --- functions / procedures / aggregates ---------------------------------
    q.push(format!(
        "SELECT {obj}, x.k, x.v \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         CROSS JOIN LATERAL (SELECT {member} AS member) m \
         CROSS JOIN LATERAL (VALUES \
           ('owner', pg_get_userbyid(p.proowner)::text), \
           ('acl', {acl}), \
           ('kind', p.prokind::text), \
           ('arguments', pg_get_function_arguments(p.oid)), \
           ('result', pg_get_function_result(p.oid)), \
           ('language', (SELECT l.lanname::text FROM pg_language l WHERE l.oid = p.prolang)), \
           ('security definer', p.prosecdef::text), \
           ('volatility', p.provolatile::text), \
           ('strict', p.proisstrict::text), \
           ('leakproof', p.proleakproof::text), \
           ('parallel', p.proparallel::text), \
           ('cost', p.procost::text), \
           ('rows', p.prorows::text), \
           ('config', nullif(ARRAY(SELECT unnest(p.proconfig) ORDER BY 1)::text, '{{}}')), \
           ('source md5', md5(p.prosrc)), \
           ('definition', CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END) \
         ) x(k, v) \
         WHERE @NSP@ AND (NOT m.member OR x.k = 'acl')",
        obj = obj("pg_proc", "p.oid", "0"),
        member = ext_member("pg_proc", "p.oid"),
        acl = acl("p.proacl", "'f'", "p.proowner"),
    ));

    // --- types -----------------------------------------------------------------
    q.push(format!(
        "SELECT {obj}, x.k, x.v \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         CROSS JOIN LATERAL (SELECT {member} AS member) m \
         CROSS JOIN LATERAL (VALUES \
           ('kind', t.typtype::text), \
           ('owner', pg_get_userbyid(t.typowner)::text), \
           ('acl', {acl}), \
           ('labels', CASE WHEN t.typtype = 'e' THEN (SELECT string_agg(quote_literal(e.enumlabel), ', ' \
               ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid) END), \
           ('base type', CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END), \
           ('not null', CASE WHEN t.typtype = 'd' THEN t.typnotnull::text END), \
           ('default', CASE WHEN t.typtype = 'd' THEN coalesce(pg_get_expr(t.typdefaultbin, 0), t.typdefault) END), \
           ('collation', CASE WHEN t.typtype = 'd' AND t.typcollation <> 0 THEN \
               (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co \
                JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) END), \
           ('attributes', CASE WHEN t.typtype = 'c' THEN (SELECT string_agg(quote_ident(a.attname) || ' ' || \
               format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) FROM pg_attribute a \
               WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) END), \
           ('range subtype', (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid)) \
         ) x(k, v) \
         WHERE @NSP@ \
           AND NOT EXISTS (SELECT 1 FROM pg_type el WHERE el.typarray = t.oid) \
           AND (t.typrelid = 0 OR (SELECT rc.relkind FROM pg_class rc WHERE rc.oid = t.typrelid) = 'c') \
           AND (NOT m.member OR x.k = 'acl')",
        obj = obj("pg_type", "t.oid", "0"),
        member = ext_member("pg_type", "t.oid"),
        acl = acl("t.typacl", "'T'", "t.typowner"),
    ));

    // --- comments (every object in scope, extension members excepted) -----------
    q.push(String::from(
        "SELECT n.obj, 'comment', n.descr FROM ( \
           SELECT o.type || ' ' || o.identity AS obj, d.description AS descr, \
             CASE WHEN d.classoid = 'pg_namespace'::regclass \
               THEN (SELECT s.nspname FROM pg_namespace s WHERE s.oid = d.objoid) \
               ELSE o.schema END AS nspname \
           FROM pg_description d CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) o \
           WHERE d.objoid >= 16384 AND NOT EXISTS (SELECT 1 FROM pg_depend e \
             WHERE e.classid = d.classoid AND e.objid = d.objoid AND e.deptype = 'e') \
         ) n WHERE n.nspname IS NULL OR @NSP@",
    ));

    // --- publications ------------------------------------------------------------
    q.push(format!(
        "SELECT {obj}, x.k, x.v FROM pg_publication p CROSS JOIN LATERAL (VALUES \
           ('owner', pg_get_userbyid(p.pubowner)::text), \
           ('all tables', p.puballtables::text), \
           ('operations', concat_ws(',', CASE WHEN p.pubinsert THEN 'insert' END, \
               CASE WHEN p.pubupdate THEN 'update' END, CASE WHEN p.pubdelete THEN 'delete' END, \
               CASE WHEN p.pubtruncate THEN 'truncate' END)), \
           ('via root', p.pubviaroot::text) \
         ) x(k, v) \
         UNION ALL \
         SELECT 'publication ' || quote_ident(pt.pubname), \
           'table ' || quote_ident(pt.schemaname) || '.' || quote_ident(pt.tablename), \
           (to_jsonb(pt) - ARRAY['pubname', 'schemaname', 'tablename'])::text \
         FROM pg_publication_tables pt JOIN pg_namespace n ON n.nspname = pt.schemaname \
         WHERE @NSP@",
        obj = obj("pg_publication", "p.oid", "0"),
    ));

    // --- extensions --------------------------------------------------------------
    q.push(format!(
        "SELECT {obj}, x.k, x.v FROM pg_extension e CROSS JOIN LATERAL (VALUES \
           ('schema', (SELECT n.nspname::text FROM pg_namespace n WHERE n.oid = e.extnamespace)), \
           ('version', e.extversion), \
           ('owner', pg_get_userbyid(e.extowner)::text) \
         ) x(k, v)",
        obj = obj("pg_extension", "e.oid", "0"),
    ));

    // --- event triggers (platform ones skipped) ------------------------------------
    q.push(format!(
        "SELECT {obj}, x.k, x.v FROM pg_event_trigger et CROSS JOIN LATERAL (VALUES \
           ('event', et.evtevent::text), \
           ('owner', pg_get_userbyid(et.evtowner)::text), \
           ('enabled', et.evtenabled::text), \
           ('tags', nullif(array_to_string(ARRAY(SELECT unnest(et.evttags) ORDER BY 1), ','), '')), \
           ('function', et.evtfoid::regprocedure::text) \
         ) x(k, v)",
        obj = obj("pg_event_trigger", "et.oid", "0"),
    ));

    // --- default privileges ------------------------------------------------------
    q.push(format!(
        "SELECT {obj}, 'acl', array_to_string(ARRAY(SELECT x::text FROM unnest(d.defaclacl) x ORDER BY 1), ',') \
         FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace \
         WHERE d.defaclnamespace = 0 OR @NSP@",
        obj = obj("pg_default_acl", "d.oid", "0"),
    ));

    // --- other user objects: existence (schema-less ones always) --------------------
    let other_catalogs = [
        "pg_operator",
        "pg_opclass",
        "pg_opfamily",
        "pg_collation",
        "pg_statistic_ext",
        "pg_ts_config",
        "pg_ts_dict",
        "pg_ts_parser",
        "pg_ts_template",
        "pg_conversion",
        "pg_cast",
        "pg_language",
        "pg_foreign_data_wrapper",
        "pg_foreign_server",
        "pg_user_mapping",
        "pg_transform",
        "pg_am",
    ];
    let union = other_catalogs
        .iter()
        .map(|cat| {
            format!("SELECT '{cat}'::regclass AS classid, oid FROM {cat} WHERE oid >= 16384")
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    q.push(format!(
        "SELECT n.obj, 'exists', 'yes' FROM ( \
           SELECT o.type || ' ' || o.identity AS obj, o.schema AS nspname \
           FROM ({union}) u CROSS JOIN LATERAL pg_identify_object(u.classid, u.oid, 0) o \
           WHERE NOT EXISTS (SELECT 1 FROM pg_depend e \
             WHERE e.classid = u.classid AND e.objid = u.oid AND e.deptype = 'e') \
         ) n WHERE n.nspname IS NULL OR @NSP@ \
         UNION ALL \
         SELECT {stx_obj}, 'definition', pg_get_statisticsobjdef(s.oid) \
         FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace \
         WHERE @NSP@ AND NOT {stx_member} \
         UNION ALL \
         SELECT {lo_obj}, x.k, x.v FROM pg_largeobject_metadata l CROSS JOIN LATERAL (VALUES \
           ('owner', pg_get_userbyid(l.lomowner)::text), \
           ('acl', {lo_acl}), \
           ('data', (SELECT count(*)::text || ' pages, md5 ' || coalesce(md5(string_agg(p.data, ''::bytea \
               ORDER BY p.pageno)), '-') FROM pg_largeobject p WHERE p.loid = l.oid)) \
         ) x(k, v)",
        stx_obj = obj("pg_statistic_ext", "s.oid", "0"),
        stx_member = ext_member("pg_statistic_ext", "s.oid"),
        lo_obj = obj("pg_largeobject", "l.oid", "0"),
        lo_acl = acl("l.lomacl", "'L'", "l.lomowner"),
    ));

    // --- roles ---------------------------------------------------------------------
    if opts.include_roles {
        let fixed = lit_list(PLATFORM_ROLES.iter().copied());
        let platform = |col: &str| {
            format!("({col} IN ({fixed}) OR {col} LIKE 'supabase\\_%' OR {col} LIKE 'pg\\_%')")
        };
        q.push(format!(
            "SELECT 'role ' || quote_ident(r.rolname), x.k, x.v FROM pg_roles r CROSS JOIN LATERAL (VALUES \
               ('superuser', r.rolsuper::text), \
               ('inherit', r.rolinherit::text), \
               ('createrole', r.rolcreaterole::text), \
               ('createdb', r.rolcreatedb::text), \
               ('login', r.rolcanlogin::text), \
               ('replication', r.rolreplication::text), \
               ('bypassrls', r.rolbypassrls::text), \
               ('connection limit', r.rolconnlimit::text), \
               ('valid until', r.rolvaliduntil::text), \
               ('config', nullif(ARRAY(SELECT unnest(r.rolconfig) ORDER BY 1)::text, '{{}}')), \
               ('config in this database', (SELECT ARRAY(SELECT unnest(s.setconfig) ORDER BY 1)::text \
                   FROM pg_db_role_setting s WHERE s.setrole = r.oid \
                     AND s.setdatabase = (SELECT db.oid FROM pg_database db WHERE db.datname = current_database()))), \
               ('comment', shobj_description(r.oid, 'pg_authid')) \
             ) x(k, v) \
             WHERE NOT {plat_r} \
             UNION ALL \
             SELECT 'role ' || quote_ident(mr.rolname), 'member of ' || quote_ident(gr.rolname), \
               (to_jsonb(am) - ARRAY['oid', 'roleid', 'member', 'grantor'])::text \
             FROM pg_auth_members am JOIN pg_roles mr ON mr.oid = am.member JOIN pg_roles gr ON gr.oid = am.roleid \
             WHERE NOT {plat_mr} \
             UNION ALL \
             SELECT 'role ' || quote_ident(gr.rolname), 'has member ' || quote_ident(mr.rolname), \
               (to_jsonb(am) - ARRAY['oid', 'roleid', 'member', 'grantor'])::text \
             FROM pg_auth_members am JOIN pg_roles mr ON mr.oid = am.member JOIN pg_roles gr ON gr.oid = am.roleid \
             WHERE NOT {plat_gr}",
            plat_r = platform("r.rolname"),
            plat_mr = platform("mr.rolname"),
            plat_gr = platform("gr.rolname"),
        ));
    }

    q
}

/// `\gexec` scripts printing the data digest of every table/populated
/// matview and the state of every sequence in scope.
fn data_script(nsp: &str) -> String {
    let filter = data_filter();
    let rel_obj = obj("pg_class", "c.oid", "0");
    let obj_lit = esc(&rel_obj);
    format!(
        "SELECT format('SELECT %L || chr(31) || ''data'' || chr(31) || count(*)::text || '' rows, md5 '' \
           || coalesce(md5(string_agg(h, '''' ORDER BY h)), ''-'') || chr(30) \
           FROM (SELECT md5(cmp_row__::text) AS h FROM %s %s cmp_row__) s', \
           {obj_lit}, CASE WHEN c.relkind = 'p' THEN '' ELSE 'ONLY' END, c.oid::regclass) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE (c.relkind IN ('r', 'p') OR (c.relkind = 'm' AND c.relispopulated)) \
           AND {nsp} AND {filter} \
         ORDER BY 1 \\gexec\n\
         SELECT format('SELECT %L || chr(31) || ''state'' || chr(31) || ''last_value='' || last_value::text \
           || '', is_called='' || is_called::text || chr(30) FROM %s', {obj_lit}, c.oid::regclass) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'S' AND {nsp} AND {filter} AND NOT {member} \
         ORDER BY 1 \\gexec\n",
        member = ext_member("pg_class", "c.oid"),
    )
}
