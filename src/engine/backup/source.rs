//! What a backup reads before dumping: the source server (version, size,
//! materialized views in dependency order, a catalog summary, one exported
//! snapshot), and the pg_dump arguments of each artifact.

use super::manifest::{MatviewInfo, ObjectSummary};
use super::options::{Artifact, BackupOptions};
use crate::engine::conninfo::ConnInfo;
use crate::engine::error::{Error, Result};
use crate::engine::ident;
use crate::engine::pg::connect;
use crate::engine::supabase;

pub(super) struct Server {
    pub(super) version: String,
    pub(super) major: u32,
    pub(super) size: i64,
    pub(super) matviews: Vec<MatviewInfo>,
    pub(super) has_history: bool,
    /// Platform schemas pg_dump could not lock a table of (left out of the
    /// schema archive, with a warning).
    pub(super) unreadable_schemas: Vec<String>,
    pub(super) cluster_roles: Vec<String>,
    pub(super) schemas: Vec<String>,
    pub(super) objects: Vec<ObjectSummary>,
    pub(super) snapshot: Option<String>,
    /// The largest ordinary tables (not an extension's), with their heap +
    /// TOAST bytes, largest first: candidates for parallel data streams.
    pub(super) big_tables: Vec<(String, String, i64)>,
    /// Heap + TOAST bytes of all those tables.
    pub(super) table_bytes: i64,
    /// Connections still free for this role (max_connections less the
    /// reserved ones and those in use), if it could be read.
    pub(super) free_connections: Option<i64>,
    /// Holds the snapshot open until the dumps are done.
    pub(super) _client: tokio_postgres::Client,
}

/// Matviews in dependency order (a matview after those it reads).
pub(super) async fn matviews(client: &tokio_postgres::Client) -> Result<Vec<MatviewInfo>> {
    let rows = client
        .query(
            "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relispopulated,
                    COALESCE(ARRAY(
                        SELECT DISTINCT d.refobjid::int8 FROM pg_rewrite r
                        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                        JOIN pg_class dc ON dc.oid = d.refobjid AND dc.relkind = 'm'
                        WHERE r.ev_class = c.oid AND d.refobjid <> c.oid), '{}')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'm' ORDER BY 2, 3",
            &[],
        )
        .await
        .map_err(|e| Error::connection(format!("could not list materialized views: {e}")))?;
    let mut pending: Vec<(i64, MatviewInfo, Vec<i64>)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                MatviewInfo {
                    schema: r.get(1),
                    name: r.get(2),
                    populated: r.get(3),
                },
                r.get(4),
            )
        })
        .collect();
    let mut done: Vec<i64> = Vec::new();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let before = pending.len();
        let mut i = 0;
        while i < pending.len() {
            if pending[i].2.iter().all(|d| done.contains(d)) {
                let (oid, mv, _) = pending.remove(i);
                done.push(oid);
                out.push(mv);
            } else {
                i += 1;
            }
        }
        if pending.len() == before {
            // A cycle cannot exist between matviews; keep the rest as listed.
            out.extend(pending.drain(..).map(|(_, mv, _)| mv));
        }
    }
    Ok(out)
}

/// What the catalog holds, for restore previews: tables (with columns),
/// views, sequences, functions (with a digest of the body) and types.
pub(crate) async fn object_summary(client: &tokio_postgres::Client) -> Result<Vec<ObjectSummary>> {
    let rows = client
        .query(
            "SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                        WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' ELSE 'foreign table' END,
                    n.nspname::text, c.relname::text,
                    COALESCE((SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                              FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
             UNION ALL
             SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
                    n.nspname::text, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                    md5(COALESCE(p.prosrc, ''))
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
             UNION ALL
             SELECT 'type', n.nspname::text, t.typname::text, t.typtype::text
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE t.typtype IN ('e', 'd', 'c', 'r') AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
             ORDER BY 2, 1, 3",
            &[],
        )
        .await
        .map_err(|e| Error::connection(format!("could not summarize the catalog: {e}")))?;
    Ok(rows
        .iter()
        .map(|r| ObjectSummary {
            kind: r.get(0),
            schema: r.get(1),
            name: r.get(2),
            signature: r.get(3),
        })
        .filter(|o| !o.schema.starts_with("pg_") && o.schema != "information_schema")
        .collect())
}

/// Platform schemas pg_dump cannot dump as this role: it locks every table
/// it dumps, which needs USAGE on the schema and SELECT on the table.
pub(crate) async fn unreadable_platform_schemas(
    client: &tokio_postgres::Client,
) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT n.nspname::text FROM pg_namespace n
             WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
               AND (NOT has_schema_privilege(n.oid, 'USAGE')
                    OR EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid
                               AND c.relkind IN ('r', 'p') AND NOT has_table_privilege(c.oid, 'SELECT')))
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| Error::connection(format!("could not check schema privileges: {e}")))?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|s| supabase::is_managed_schema(s))
        .collect())
}

pub(super) async fn inspect(info: &ConnInfo) -> Result<(Server, Vec<String>)> {
    let client = connect::connect(info, None).await?;
    let mut warnings = Vec::new();
    // One snapshot for every dump of this backup, so they agree; the
    // queries below read it too.
    let snapshot = match client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
    {
        Ok(()) => match client.query_one("SELECT pg_export_snapshot()", &[]).await {
            Ok(r) => Some(r.get::<_, String>(0)),
            Err(e) => {
                warnings.push(format!("could not export a snapshot ({e}); the dumps may see slightly different moments"));
                let _ = client.batch_execute("ROLLBACK").await;
                None
            }
        },
        Err(e) => {
            warnings.push(format!("could not open a snapshot transaction ({e})"));
            None
        }
    };
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int,
                    pg_database_size(current_database()),
                    EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'supabase_migrations'),
                    ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1),
                    ARRAY(SELECT nspname::text FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' ORDER BY 1)",
            &[],
        )
        .await
        .map_err(|e| Error::connection(format!("could not read the server version: {e}")))?;
    let mvs = matviews(&client).await?;
    let objects = object_summary(&client).await?;
    let big_tables = client
        .query(
            "SELECT n.nspname::text, c.relname::text,
                    pg_relation_size(c.oid) + COALESCE(pg_relation_size(NULLIF(c.reltoastrelid, 0)), 0),
                    sum(pg_relation_size(c.oid) + COALESCE(pg_relation_size(NULLIF(c.reltoastrelid, 0)), 0)) OVER ()::int8
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                               AND d.objid = c.oid AND d.deptype = 'e')
             ORDER BY 3 DESC, 1, 2 LIMIT 64",
            &[],
        )
        .await
        .map_err(|e| Error::connection(format!("could not list table sizes: {e}")))?
        ;
    let table_bytes = big_tables.first().map(|r| r.get::<_, i64>(3)).unwrap_or(0);
    let big_tables = big_tables
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let free_connections = crate::engine::pg::connect::free_connections(&client).await;
    let version_num: i32 = row.get(1);
    let unreadable = unreadable_platform_schemas(&client).await?;
    for s in &unreadable {
        warnings.push(format!(
            "the platform schema {s} is not fully readable by this role; its definitions are not in schema.dump"
        ));
    }
    Ok((
        Server {
            version: row.get(0),
            major: (version_num / 10000) as u32,
            size: row.get(2),
            matviews: mvs,
            has_history: row.get(3),
            unreadable_schemas: unreadable,
            cluster_roles: row.get(4),
            schemas: row.get(5),
            objects,
            snapshot,
            big_tables,
            table_bytes,
            free_connections,
            _client: client,
        },
        warnings,
    ))
}

impl Server {
    /// Checks that every schema and table the options name exists in the
    /// source, exactly; an unknown one is an error listing close matches.
    pub(super) fn check_names(&self, opts: &BackupOptions) -> Result<()> {
        for s in &opts.schemas {
            if !self.schemas.contains(s) {
                let close = ident::close_matches(s, self.schemas.iter().map(String::as_str));
                return Err(ident::unknown("schema", &ident::render(s), close));
            }
        }
        let tables: Vec<(String, String)> = self
            .objects
            .iter()
            .filter(|o| o.kind == "table")
            .map(|o| (o.schema.clone(), o.name.clone()))
            .collect();
        for (s, t) in opts.excluded_pairs() {
            if !tables.iter().any(|(a, b)| *a == s && *b == t) {
                let names: Vec<String> = tables
                    .iter()
                    .map(|(a, b)| ident::render_table(a, b))
                    .collect();
                let close = ident::close_matches(
                    &ident::render_table(&s, &t),
                    names.iter().map(String::as_str),
                );
                return Err(ident::unknown("table", &ident::render_table(&s, &t), close));
            }
        }
        Ok(())
    }
}

/// Tables smaller than this stay in the main data stream (a pg_dump's start
/// costs more than they would save); [`STREAM_MIN_ENV`] overrides it.
pub const STREAM_MIN_BYTES: i64 = 64 << 20;
/// Overrides [`STREAM_MIN_BYTES`], in MiB.
pub const STREAM_MIN_ENV: &str = "SUPABACKUP_STREAM_MIN_MB";

/// [`STREAM_MIN_BYTES`], or what [`STREAM_MIN_ENV`] says.
pub fn stream_min_bytes_from_env() -> i64 {
    std::env::var(STREAM_MIN_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(|mb| mb.clamp(0, 1 << 30) << 20)
        .unwrap_or(STREAM_MIN_BYTES)
}
/// Connections left to others when extra streams are planned.
const SPARE_CONNECTIONS: i64 = 3;

/// What the stream plan reads of the source.
pub(super) struct StreamFacts<'a> {
    pub(super) snapshot: bool,
    pub(super) big_tables: &'a [(String, String, i64)],
    pub(super) table_bytes: i64,
    pub(super) free_connections: Option<i64>,
}

impl Server {
    pub(super) fn stream_facts(&self) -> StreamFacts<'_> {
        StreamFacts {
            snapshot: self.snapshot.is_some(),
            big_tables: &self.big_tables,
            table_bytes: self.table_bytes,
            free_connections: self.free_connections,
        }
    }
}

/// Which tables' data extra pg_dump streams dump, one list per extra
/// stream (none: one stream), and why fewer streams run than asked. Only
/// tables the main stream would dump qualify, largest first, each given to
/// the least loaded stream (the main one, holding every other table,
/// included); each stream is a connection, and those the server has free
/// are respected. Without an exported snapshot the streams could not agree,
/// so there is one.
pub(super) fn data_streams(
    opts: &BackupOptions,
    server: &StreamFacts<'_>,
    min: i64,
) -> (Vec<Vec<(String, String)>>, Option<String>) {
    let asked = opts.effective_streams() as usize;
    if asked <= 1 || !opts.artifacts().contains(&Artifact::Data) {
        return (Vec::new(), None);
    }
    if !server.snapshot {
        // (The backup's warnings already say the dumps shared no snapshot.)
        return (Vec::new(), None);
    }
    let mut streams = asked;
    let mut note = None;
    if let Some(free) = server.free_connections {
        // The other artifacts' dumps run at the same time.
        let room = (free - SPARE_CONNECTIONS - opts.artifacts().len() as i64).max(0) as usize;
        if room + 1 < streams {
            streams = room + 1;
            note = Some(format!(
                "{streams} data stream(s) instead of {asked}: the server has {free} connection(s) free"
            ));
        }
    }
    if streams <= 1 {
        return (Vec::new(), note);
    }
    let excluded = opts.excluded_pairs();
    let in_main_stream = |schema: &str, table: &str| {
        let schema_ok = if opts.schemas.is_empty() {
            supabase::data_dump_covers(schema)
        } else {
            opts.schemas.iter().any(|s| s == schema)
        };
        schema_ok
            && !supabase::PLATFORM_BOOKKEEPING_TABLES
                .iter()
                .any(|t| t.split_once('.') == Some((schema, table)))
            && !excluded.iter().any(|(s, t)| s == schema && t == table)
    };
    let total: i64 = server.table_bytes.max(0);
    let candidates: Vec<&(String, String, i64)> = server
        .big_tables
        .iter()
        .filter(|(s, t, size)| *size >= min && in_main_stream(s, t))
        .collect();
    // Stream 0 starts with everything that stays in it.
    let offloadable: i64 = candidates.iter().map(|c| c.2).sum();
    let mut loads = vec![0i64; streams];
    loads[0] = (total - offloadable).max(0);
    let mut lists: Vec<Vec<(String, String)>> = vec![Vec::new(); streams];
    for (s, t, size) in candidates {
        let (i, _) = loads
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .unwrap_or((0, &0));
        loads[i] += size;
        lists[i].push((s.clone(), t.clone()));
    }
    (
        lists
            .into_iter()
            .skip(1)
            .filter(|l| !l.is_empty())
            .collect(),
        note,
    )
}

/// The pg_dump arguments of one extra data stream: these tables' rows only.
pub(super) fn stream_args(tables: &[(String, String)], snapshot: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "--quote-all-identifiers".to_owned(),
        "--no-password".to_owned(),
        "--data-only".to_owned(),
    ];
    if let Some(s) = snapshot {
        args.push(format!("--snapshot={s}"));
    }
    for (s, t) in tables {
        args.push(format!("--table={}", ident::table_pattern(s, t)));
    }
    args
}

/// The pg_dump arguments for one artifact.
pub(super) fn dump_args(
    artifact: Artifact,
    opts: &BackupOptions,
    info: &ConnInfo,
    snapshot: Option<&str>,
    server: &Server,
) -> Vec<String> {
    let all_schemas = &server.schemas;
    let mut args = vec![
        "--quote-all-identifiers".to_owned(),
        "--no-password".to_owned(),
    ];
    if artifact == Artifact::Roles {
        args.extend([
            "--roles-only".to_owned(),
            "--no-role-passwords".to_owned(),
            format!("--database={}", info.dbname),
        ]);
        return args;
    }
    if let Some(s) = snapshot {
        args.push(format!("--snapshot={s}"));
    }
    match artifact {
        Artifact::Schema => {
            args.push("--schema-only".into());
            if opts.schemas.is_empty() {
                // The whole database, platform schemas included: a restore
                // compares them with the target's and brings back the
                // user's objects among them (triggers on auth.users, storage
                // policies). Migration history is history.sql.
                args.push("--exclude-schema=supabase_migrations".into());
                args.push("--exclude-schema=*timescaledb_*".into());
                for s in &server.unreadable_schemas {
                    args.push(format!("--exclude-schema={}", ident::pattern(s)));
                }
            } else {
                // Every other schema is excluded (rather than these
                // included), so database-wide objects that reach into the
                // chosen schemas — publication memberships — stay in.
                for s in all_schemas
                    .iter()
                    .filter(|s| !opts.schemas.contains(s) || supabase::is_managed_schema(s))
                {
                    args.push(format!("--exclude-schema={}", ident::pattern(s)));
                }
            }
        }
        Artifact::Data => {
            args.push("--data-only".into());
            if opts.schemas.is_empty() {
                for s in supabase::MANAGED_SCHEMAS
                    .iter()
                    .filter(|s| !supabase::MANAGED_WITH_USER_DATA.contains(s))
                {
                    args.push(format!("--exclude-schema={}", ident::pattern(s)));
                }
                args.push("--exclude-schema=*timescaledb_*".into());
            } else {
                for s in &opts.schemas {
                    args.push(format!("--schema={}", ident::pattern(s)));
                }
            }
            // The platform's own migration bookkeeping exists in every project.
            for t in supabase::PLATFORM_BOOKKEEPING_TABLES {
                if let Some((s, n)) = t.split_once('.') {
                    args.push(format!(
                        "--exclude-table-data={}",
                        ident::table_pattern(s, n)
                    ));
                }
            }
        }
        Artifact::History => {
            args.push(format!(
                "--schema={}",
                ident::pattern("supabase_migrations")
            ));
        }
        // Written by backups of earlier versions only.
        Artifact::Roles | Artifact::SchemaArchive | Artifact::PlatformArchive => {}
    }
    if !matches!(artifact, Artifact::History | Artifact::PlatformArchive) {
        for (s, t) in opts.excluded_pairs() {
            args.push(format!(
                "--exclude-table-data={}",
                ident::table_pattern(&s, &t)
            ));
        }
    }
    args
}

/// The user's schemas and tables of a database, for pickers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceNames {
    pub schemas: Vec<String>,
    /// (schema, table), tables and partitioned tables.
    pub tables: Vec<(String, String)>,
}

impl crate::engine::Engine {
    /// The user's schemas and tables of a project (platform schemas left
    /// out), as PostgreSQL stores their names.
    pub async fn source_names(&self, project: &str) -> Result<SourceNames> {
        let p = self.project(project).await?;
        let info = self.connection_info(&p).await?;
        let client = connect::connect(&info, None).await?;
        let rows = client
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_namespace n
                 LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                 WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
                 ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(|e| Error::connection(format!("could not list the schemas: {e}")))?;
        let mut out = SourceNames::default();
        for r in rows {
            let s: String = r.get(0);
            if crate::engine::backup::platform::is_platform_schema(&s) {
                continue;
            }
            if out.schemas.last() != Some(&s) {
                out.schemas.push(s.clone());
            }
            if let Some(t) = r.get::<_, Option<String>>(1) {
                out.tables.push((s, t));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::backup::options::BackupKind;

    const MB: i64 = 1 << 20;

    fn table(s: &str, t: &str, mb: i64) -> (String, String, i64) {
        (s.into(), t.into(), mb * MB)
    }

    fn plan(opts: &BackupOptions, facts: &StreamFacts<'_>) -> (Vec<Vec<String>>, Option<String>) {
        let (lists, note) = data_streams(opts, facts, 64 * MB);
        let lists = lists
            .into_iter()
            .map(|l| l.into_iter().map(|(s, t)| format!("{s}.{t}")).collect())
            .collect();
        (lists, note)
    }

    fn streams(n: u8) -> BackupOptions {
        BackupOptions {
            streams: Some(n),
            ..Default::default()
        }
    }

    #[test]
    fn the_largest_tables_the_main_stream_would_dump_are_spread_evenly() {
        let big = vec![
            table("public", "events", 900),
            table("auth", "users", 500),
            table("public", "docs", 400),
            table("storage", "migrations", 300),
            table("extensions", "big_ext", 300),
            table("public", "excluded", 300),
            table("public", "small", 10),
        ];
        let facts = StreamFacts {
            snapshot: true,
            big_tables: &big,
            table_bytes: 2800 * MB,
            free_connections: Some(100),
        };
        let mut opts = streams(3);
        opts.exclude_tables = vec!["public.excluded".into()];
        let (lists, note) = plan(&opts, &facts);
        assert_eq!(note, None);
        // The main stream keeps the 1,090 MB nobody may take plus what
        // balances it; the platform's bookkeeping, a managed schema without
        // user data, excluded and small tables never move.
        assert_eq!(
            lists,
            [vec!["public.events"], vec!["auth.users", "public.docs"]]
        );
        // One stream, or an incremental backup: nothing moves.
        assert!(plan(&streams(1), &facts).0.is_empty());
        let inc = BackupOptions {
            kind: BackupKind::Incremental,
            ..Default::default()
        };
        assert!(plan(&inc, &facts).0.is_empty());
        // A schema filter: only its tables.
        let mut only = streams(4);
        only.schemas = vec!["auth".into()];
        assert_eq!(plan(&only, &facts).0, [vec!["auth.users"]]);
        // No snapshot: the streams could not agree.
        let no_snap = StreamFacts {
            snapshot: false,
            ..facts
        };
        assert!(plan(&streams(4), &no_snap).0.is_empty());
    }

    #[test]
    fn the_servers_free_connections_cap_the_streams() {
        let big = vec![
            table("public", "a", 500),
            table("public", "b", 500),
            table("public", "c", 500),
        ];
        let facts = |free| StreamFacts {
            snapshot: true,
            big_tables: &big,
            table_bytes: 1600 * MB,
            free_connections: Some(free),
        };
        // Four artifacts' dumps and three spare leave room for one more.
        let (lists, note) = plan(&streams(4), &facts(8));
        assert_eq!(lists.len(), 1, "{lists:?}");
        assert!(note.unwrap().contains("2 data stream(s) instead of 4"));
        let (lists, note) = plan(&streams(4), &facts(3));
        assert!(lists.is_empty());
        assert!(note.unwrap().contains("1 data stream(s) instead of 4"));
        assert_eq!(plan(&streams(4), &facts(100)).0.len(), 3);
    }
}
