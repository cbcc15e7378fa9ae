//! The backup engine against the harness cluster and the Supabase-like fixture.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use supabackup::engine::Engine;
use supabackup::engine::backup::manifest::Manifest;
use supabackup::engine::backup::options::Artifact;
use supabackup::engine::backup::pipeline::open_artifact;
use supabackup::engine::backup::{BackupKind, BackupOptions, BackupRequest, Codec};
use supabackup::engine::catalog::backups::BackupRecord;
use supabackup::engine::crypto::Secret;
use tokio_util::sync::CancellationToken;

use crate::support::engine::{TestEngine, cli, input, stderr, unlocked_engine};
use crate::support::pg::{TestDb, cluster};

pub const BACKUP_PASS: &str = "backup passphrase for tests";

pub async fn engine_for(db: &TestDb, name: &str) -> TestEngine {
    with_source(unlocked_engine().await, db, name).await
}

/// `t` with project `name` on `db` and the backup passphrase set.
pub async fn with_source(t: TestEngine, db: &TestDb, name: &str) -> TestEngine {
    t.engine
        .add_project(input(name, &db.url()))
        .await
        .expect("add project");
    t.engine
        .set_backup_passphrase(Secret::new(BACKUP_PASS))
        .await
        .expect("backup passphrase");
    t
}

pub async fn backup(engine: &Engine, project: &str, options: BackupOptions) -> BackupRecord {
    engine
        .run_backup(
            BackupRequest {
                no_hooks: false,
                project: project.into(),
                options,
                job_id: None,
                store: Default::default(),
            },
            Arc::new(|_| {}),
            CancellationToken::new(),
        )
        .await
        .expect("backup completes")
}

/// The plain SQL of one artifact of a backup.
pub fn plain(rec: &BackupRecord, artifact: Artifact) -> String {
    let dir = PathBuf::from(rec.file_path.as_deref().expect("folder"));
    let m = Manifest::read(&dir).expect("manifest");
    let f = m
        .file(artifact)
        .unwrap_or_else(|| panic!("{artifact:?} missing in {:?}", m.files));
    let (mut r, _) = open_artifact(
        &dir.join(&f.name),
        f.codec,
        Some(&Secret::new(BACKUP_PASS)),
        None,
    )
    .expect("open");
    let mut s = String::new();
    r.read_to_string(&mut s).expect("read artifact");
    s
}

fn names(rec: &BackupRecord) -> Vec<String> {
    let m = Manifest::read(Path::new(rec.file_path.as_deref().expect("folder"))).expect("manifest");
    m.files.iter().map(|f| f.name.clone()).collect()
}

/// Every user table whose data a full backup carries, as `schema.table`.
pub fn data_tables(db: &TestDb) -> Vec<String> {
    db.psql(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r','p') AND n.nspname IN (SELECT nspname FROM pg_namespace
               WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('information_schema','extensions','realtime','vault',
                     'graphql','graphql_public','supabase_migrations','pgbouncer','net','cron'))
           AND format('%I.%I', n.nspname, c.relname) NOT IN ('auth.schema_migrations','storage.migrations','supabase_functions.migrations')
         ORDER BY 1",
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// count and an order-independent content digest of a table.
pub fn table_digest(db: &TestDb, table: &str) -> String {
    db.psql(&format!(
        "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM {table} t"
    ))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_backup_restores_with_supabases_documented_procedure() {
    let c = cluster();
    let src = c.create_db("bk_full_src");
    src.load_fixture();
    let t = engine_for(&src, "Fixture").await;
    let rec = backup(&t.engine, "Fixture", BackupOptions::default()).await;
    assert_eq!(rec.status, "completed");
    assert_eq!(
        names(&rec),
        [
            "roles.sql.zst.enc",
            "schema.sql.zst.enc",
            "schema.dump.zst.enc",
            "data.sql.zst.enc",
            "history.sql.zst.enc"
        ]
    );
    let folder = PathBuf::from(rec.file_path.clone().expect("folder"));
    assert!(folder.starts_with(t.engine.data_dir().backups().join("fixture")));
    assert!(
        folder
            .file_name()
            .expect("name")
            .to_string_lossy()
            .contains("-full-")
    );

    let roles = plain(&rec, Artifact::Roles);
    let schema = plain(&rec, Artifact::Schema);
    let data = plain(&rec, Artifact::Data);
    let history = plain(&rec, Artifact::History);
    // Roles: the user's, never the platform's, never passwords.
    assert!(roles.contains("\"reporting_ro\"") && roles.contains("\"metabase_reader\""));
    assert!(!roles.contains("CREATE ROLE \"anon\"") && !roles.contains("CREATE ROLE \"postgres\""));
    assert!(!roles.contains("PASSWORD"));
    // Schema: what the CLI's sed would lose survives.
    assert!(schema.contains("REVOKE ALL ON FUNCTION \"public\".\"normalize_email\"(\"e\" \"extensions\".\"citext\") FROM PUBLIC;"), "REVOKE kept");
    assert!(
        schema.contains("\n-- create a public profile for every new auth user\n"),
        "function body intact"
    );
    assert!(
        !schema.contains("CREATE SCHEMA \"auth\""),
        "platform schemas excluded"
    );
    // Data: replica mode, auth data included, matview refreshed.
    assert!(data.starts_with("-- supabackup data dump"));
    assert!(data.contains("SET session_replication_role = replica;"));
    assert!(data.contains("COPY \"auth\".\"users\""));
    assert!(!data.contains("COPY \"auth\".\"schema_migrations\""));
    assert!(data.contains("REFRESH MATERIALIZED VIEW \"public\".\"product_sales_mv\";"));
    assert!(history.contains("\"supabase_migrations\".\"schema_migrations\""));
    let m = t.engine.backup_manifest(&rec.id).await.expect("manifest");
    assert!(
        m.matviews
            .iter()
            .any(|v| v.name == "product_sales_mv" && v.populated)
    );
    assert!(m.snapshot.is_some());
    let users = m
        .tables
        .iter()
        .find(|x| x.schema == "auth" && x.name == "users")
        .expect("auth.users stat");
    assert_eq!(
        users.rows.to_string(),
        src.psql("SELECT count(*) FROM auth.users")
    );

    // Restore the way Supabase documents it, into an empty "new project".
    let dst = c.create_db("bk_full_dst");
    dst.load_platform_only();
    let work = tempfile::tempdir().expect("tmp");
    // One artifact through stock tools: supabackup decrypt, then zstd -d.
    let enc = folder.join("data.sql.zst.enc");
    let zst = work.path().join("data.sql.zst");
    let out = cli(
        work.path(),
        &[
            "decrypt",
            enc.to_str().expect("utf8"),
            "-o",
            zst.to_str().expect("utf8"),
        ],
        &[("SUPABACKUP_BACKUP_PASSPHRASE", BACKUP_PASS)],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let status = std::process::Command::new("zstd")
        .args(["-d", "-q", "-f"])
        .arg(&zst)
        .status()
        .expect("zstd");
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(work.path().join("data.sql")).expect("data.sql"),
        data
    );
    for (name, text) in [
        ("roles.sql", &roles),
        ("schema.sql", &schema),
        ("history.sql", &history),
    ] {
        write(&work.path().join(name), text);
    }
    let mut cmd = c.psql_cmd(&dst.name);
    cmd.args(["--single-transaction", "-v", "ON_ERROR_STOP=1"]);
    for f in ["roles.sql", "schema.sql", "data.sql", "history.sql"] {
        cmd.arg("-f").arg(work.path().join(f));
    }
    let out = cmd.output().expect("psql");
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let tables = data_tables(&src);
    assert!(tables.len() > 10, "{tables:?}");
    for table in &tables {
        assert_eq!(
            table_digest(&src, table),
            table_digest(&dst, table),
            "{table} differs"
        );
    }
    let mv = "SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM public.product_sales_mv t";
    assert_eq!(
        src.psql(mv),
        dst.psql(mv),
        "the materialized view is populated as it was"
    );
    // The grant statements ran (the plain psql procedure cannot undo what the
    // target's own default privileges add; the restore engine does).
    let granted = "SELECT has_function_privilege('service_role', 'public.normalize_email(extensions.citext)', 'EXECUTE')";
    assert_eq!(dst.psql(granted), "t");
    let body = "SELECT md5(prosrc) FROM pg_proc WHERE proname = 'handle_new_user'";
    assert_eq!(
        src.psql(body),
        dst.psql(body),
        "function bodies are byte-identical"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_type_and_filter_produces_its_artifacts() {
    let c = cluster();
    let src = c.create_db("bk_types");
    src.load_fixture();
    let t = engine_for(&src, "Types").await;
    let e = &t.engine;
    let schema = backup(
        e,
        "Types",
        BackupOptions {
            kind: BackupKind::Schema,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        names(&schema),
        ["schema.sql.zst.enc", "schema.dump.zst.enc"]
    );
    let data = backup(
        e,
        "Types",
        BackupOptions {
            kind: BackupKind::Data,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(names(&data), ["data.sql.zst.enc"]);
    let roles = backup(
        e,
        "Types",
        BackupOptions {
            kind: BackupKind::Roles,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(names(&roles), ["roles.sql.zst.enc"]);

    let filtered = backup(
        e,
        "Types",
        BackupOptions {
            schemas: vec!["billing".into()],
            codec: Codec::None,
            encrypt: false,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(names(&filtered), ["schema.sql", "schema.dump", "data.sql"]);
    let m = e.backup_manifest(&filtered.id).await.expect("manifest");
    assert!(
        !m.tables.is_empty() && m.tables.iter().all(|x| x.schema == "billing"),
        "{:?}",
        m.tables
    );
    let text = plain(&filtered, Artifact::Schema);
    assert!(
        text.contains("CREATE TABLE \"billing\".") && !text.contains("CREATE TABLE \"public\".")
    );

    let excluded = backup(
        e,
        "Types",
        BackupOptions {
            exclude_tables: vec!["public.events".into()],
            codec: Codec::Xz,
            level: Some(1),
            encrypt: false,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        names(&excluded),
        [
            "roles.sql.xz",
            "schema.sql.xz",
            "schema.dump.xz",
            "data.sql.xz",
            "history.sql.xz"
        ]
    );
    let m = e.backup_manifest(&excluded.id).await.expect("manifest");
    assert!(
        !m.tables.iter().any(|x| x.name == "events"),
        "rows of public.events left out"
    );
    assert!(m.tables.iter().any(|x| x.name == "orders"));
    assert!(
        plain(&excluded, Artifact::Schema).contains("CREATE TABLE \"public\".\"events\""),
        "its definition stays"
    );
    // Stock xz opens an unencrypted file.
    let dir = PathBuf::from(excluded.file_path.clone().expect("folder"));
    let out = std::process::Command::new("xz")
        .args(["-d", "-c"])
        .arg(dir.join("schema.sql.xz"))
        .output()
        .expect("xz");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        plain(&excluded, Artifact::Schema)
    );
}
