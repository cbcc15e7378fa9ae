//! docs/FORMAT.md's recipes, run as written with stock tools: Supabase's
//! documented psql procedure fails on what it cannot order (a NOT VALID
//! check that old rows violate), the sectioned recipe restores the same
//! backup into a new project with no difference.

use std::path::Path;
use std::process::Command;

use supabackup::engine::backup::{BackupOptions, Codec};

use crate::backup::{backup, engine_for};
use crate::restore_platform::EDGE_CASES;
use crate::support::compare::{CompareOptions, assert_same};
use crate::support::pg::{TestDb, cluster, roles_lock};
use crate::support::platform::new_project;

/// Runs a shell script in `dir` with psql & co. of the test cluster
/// connected to `db`; returns (success, output).
fn shell(dir: &Path, db: &TestDb, script: &str) -> (bool, String) {
    let c = cluster();
    let mut cmd = Command::new("bash");
    cmd.args(["-e", "-o", "pipefail", "-c", script])
        .current_dir(dir);
    c.pg_env(&mut cmd, &db.name);
    cmd.env(
        "PATH",
        format!(
            "{}:{}",
            c.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    )
    .env("DATABASE_URL", format!("dbname={}", db.name));
    let out = cmd.output().expect("bash");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stock_tools_recipe_restores_what_the_documented_procedure_cannot() {
    let src = new_project("recipe_src");
    src.run_sql_file_locked(EDGE_CASES);
    src.run_sql_file_locked(
        "CREATE TABLE public.private_notes (id int PRIMARY KEY, body text);
         INSERT INTO public.private_notes VALUES (1, 'secret');
         REVOKE ALL ON public.private_notes FROM anon, authenticated;",
    );
    let t = engine_for(&src, "Source").await;
    let b = backup(
        &t.engine,
        "Source",
        BackupOptions {
            codec: Codec::None,
            encrypt: false,
            ..Default::default()
        },
    )
    .await;
    let folder = std::path::PathBuf::from(b.file_path.clone().expect("folder"));
    let _roles = roles_lock();

    // Supabase's documented procedure: the NOT VALID check aborts it.
    let documented = new_project("recipe_doc");
    let (ok, out) = shell(
        &folder,
        &documented,
        "psql \"$DATABASE_URL\" --single-transaction -v ON_ERROR_STOP=1 -X -q \
           -f roles.sql -f schema.sql -f data.sql",
    );
    assert!(!ok, "the documented procedure loaded: {out}");
    assert!(out.contains("amount_positive"), "{out}");

    // The sectioned recipe of docs/FORMAT.md, step 5, as written.
    let dst = new_project("recipe_dst");
    let work = tempfile::tempdir().expect("tmp");
    for f in std::fs::read_dir(&folder).expect("folder").flatten() {
        std::fs::copy(f.path(), work.path().join(f.file_name())).expect("copy");
    }
    let recipe = r#"
jq -r '.left_out_ids[]' metadata.json > platform.ids
pg_restore -l schema.dump | awk 'NR == FNR { skip[$1] = 1; next }
    /^[0-9]/ { id = $1; sub(";", "", id); if (!(id in skip)) print }' platform.ids - > user.list
pg_restore --section=pre-data  -L user.list -f pre.sql  schema.dump
pg_restore --section=post-data -L user.list -f post.sql schema.dump
cat > suspend.sql <<'SQL'
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public REVOKE ALL ON TABLES FROM anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public REVOKE ALL ON SEQUENCES FROM anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public REVOKE ALL ON FUNCTIONS FROM anon, authenticated, service_role;
SQL
psql "$DATABASE_URL" --single-transaction -v ON_ERROR_STOP=1 -X -q \
     -f roles.sql -f suspend.sql -f pre.sql -f data.sql -f post.sql
"#;
    let (ok, out) = shell(work.path(), &dst, recipe);
    assert!(ok, "the recipe failed: {out}");
    drop(_roles);
    assert_same(&src, &dst, &CompareOptions::default());
}
