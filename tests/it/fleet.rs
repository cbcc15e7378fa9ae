//! Fleet onboarding against a local HTTP server that answers as Supabase's
//! Management API documents (the platform itself is not reachable from
//! tests): the token is checked and sealed, the account's projects and
//! branches are listed with their environment, chosen ones are added with
//! the pooler's session URL and a schedule, a scheduler tick picks up a new
//! project, and the dashboard shows each project's platform status.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde_json::{Value, json};
use supabackup::engine::ErrorKind;
use supabackup::engine::crypto::Secret;
use supabackup::engine::fleet::{FleetConfig, JobTemplate};
use supabackup::engine::schedule::{Retention, Scheduler, SchedulerConfig};

use crate::notify::HttpServer;
use crate::support::engine::{PASSPHRASE, cli, files_containing, stderr, stdout, unlocked_engine};

pub(crate) const TOKEN: &str = "sbp_0123456789abcdef0123456789abcdef01234567";
const ORG: &str = "acme-org";

/// Answers GET paths from a table (404 otherwise), 401 without the token.
#[derive(Clone)]
pub(crate) struct ManagementApi {
    server: HttpServer,
    routes: Arc<Mutex<HashMap<String, Value>>>,
}

impl ManagementApi {
    pub(crate) fn start() -> ManagementApi {
        let routes: Arc<Mutex<HashMap<String, Value>>> = Arc::new(Mutex::new(HashMap::new()));
        let table = routes.clone();
        let server = HttpServer::answering(move |r| {
            let authorized = r.headers.get("authorization").map(String::as_str)
                == Some(format!("Bearer {TOKEN}").as_str());
            let (status, body) = if !authorized {
                (401, json!({"message": "Unauthorized"}))
            } else {
                match table.lock().expect("lock").get(&r.path) {
                    Some(v) => (200, v.clone()),
                    None => (404, json!({"message": "Not Found"})),
                }
            };
            (status, String::new(), body.to_string())
        });
        ManagementApi { server, routes }
    }

    pub(crate) fn url(&self) -> String {
        self.server.url("")
    }

    pub(crate) fn route(&self, path: &str, body: Value) {
        self.routes.lock().expect("lock").insert(path.into(), body);
    }

    /// The Authorization headers the API was sent.
    fn seen_auth(&self) -> Vec<String> {
        self.server
            .requests()
            .iter()
            .filter_map(|r| r.headers.get("authorization").cloned())
            .collect()
    }
}

pub(crate) fn project(r: &str, name: &str, status: &str) -> Value {
    json!({
        "id": r, "ref": r, "name": name, "organization_id": ORG,
        "organization_slug": ORG, "region": "eu-west-1", "status": status,
        "created_at": "2026-01-02T03:04:05.000Z",
        "database": {"host": format!("db.{r}.supabase.co"), "version": "17.4.1.054", "postgres_engine": "17", "release_channel": "ga"}
    })
}

pub(crate) fn pooler(r: &str) -> Value {
    json!([{
        "identifier": r, "database_type": "PRIMARY", "is_using_scram_auth": true,
        "db_user": format!("postgres.{r}"), "db_host": "aws-0-eu-west-1.pooler.supabase.com",
        "db_port": 6543, "db_name": "postgres", "pool_mode": "transaction",
        "connection_string": format!("postgresql://postgres.{r}:[YOUR-PASSWORD]@aws-0-eu-west-1.pooler.supabase.com:6543/postgres"),
        "default_pool_size": 15, "max_client_conn": 200
    }])
}

#[tokio::test(flavor = "multi_thread")]
async fn projects_come_from_the_account_and_new_ones_on_the_next_tick() {
    let api = ManagementApi::start();
    let (shop, blog, branch, later) = (
        "shopaaaaaaaaaaaaaaaa",
        "blogbbbbbbbbbbbbbbbb",
        "shopstagingcccccccccc",
        "laterdddddddddddddddd",
    );
    api.route(
        "/v1/organizations",
        json!([{"id": ORG, "slug": ORG, "name": "Acme"}, {"id": "other", "name": "Other"}]),
    );
    api.route(
        "/v1/projects",
        json!([
            project(shop, "shop-production", "ACTIVE_HEALTHY"),
            project(blog, "blog", "ACTIVE_HEALTHY")
        ]),
    );
    api.route(
        &format!("/v1/projects/{shop}/branches"),
        json!([
            {"id": "b0", "name": "main", "project_ref": shop, "parent_project_ref": shop, "is_default": true, "status": "FUNCTIONS_DEPLOYED"},
            {"id": "b1", "name": "staging", "project_ref": branch, "parent_project_ref": shop, "is_default": false, "status": "ACTIVE_HEALTHY"}
        ]),
    );
    for r in [shop, blog, branch, later] {
        api.route(
            &format!("/v1/projects/{r}/config/database/pooler"),
            pooler(r),
        );
    }
    let t = unlocked_engine().await;
    let e = &t.engine;
    let dir = t.dir.path();
    let env = [("SUPABACKUP_PASSPHRASE", PASSPHRASE)];
    let out = cli(
        dir,
        &["fleet", "config", "--api-url", &api.url()],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // A wrong token is refused by the API and not stored.
    let bad = cli(dir, &["fleet", "token", "--stdin"], &env, Some("sbp_wrong"));
    assert_eq!(bad.status.code(), Some(6), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("refused the access token (401"),
        "{}",
        stderr(&bad)
    );
    assert!(!e.has_fleet_token().await.expect("has"));
    let good = cli(dir, &["fleet", "token", "--stdin"], &env, Some(TOKEN));
    assert!(good.status.success(), "{}", stderr(&good));
    assert!(
        stdout(&good).contains("sees 2 organization(s)"),
        "{}",
        stdout(&good)
    );

    // The list: two projects and the non-default branch, environments from
    // their names, none here yet.
    let listed = cli(dir, &["fleet", "list", "--json"], &env, None);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let list: Value = serde_json::from_str(&stdout(&listed)).expect("json");
    let rows: Vec<(String, String, String)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            (
                e["project_ref"].as_str().unwrap_or("").to_owned(),
                e["name"].as_str().unwrap_or("").to_owned(),
                e["environment"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (shop.into(), "shop-production".into(), "production".into()),
            (
                branch.into(),
                "shop-production (staging)".into(),
                "staging".into()
            ),
            (blog.into(), "blog".into(), "development".into()),
        ]
    );
    assert!(
        list.as_array()
            .expect("array")
            .iter()
            .all(|e| e["added_as"].is_null())
    );

    // Adding one with a schedule: the pooler's session port, no password.
    let added = cli(
        dir,
        &[
            "fleet",
            "add",
            shop,
            "--schedule",
            "0 3 * * *",
            "--keep-last",
            "7",
        ],
        &env,
        None,
    );
    assert!(added.status.success(), "{}", stderr(&added));
    assert!(
        stdout(&added).contains("Added 'shop-production'"),
        "{}",
        stdout(&added)
    );
    let p = e.project("shop-production").await.expect("added");
    assert_eq!(p.project_ref, shop);
    assert_eq!(
        p.db_url,
        format!(
            "postgresql://postgres.{shop}@aws-0-eu-west-1.pooler.supabase.com:5432/postgres?sslmode=require"
        )
    );
    assert_eq!(p.environment.as_str(), "production");
    assert_eq!(p.organization_id.as_deref(), Some(ORG));
    assert!(!p.has_db_password);
    let jobs = e.list_jobs().await.expect("jobs");
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].cron.as_str(), jobs[0].retention.keep_last),
        ("0 3 * * *", Some(7))
    );
    // Adding it again changes nothing.
    let again = e.fleet_add(&[shop.to_owned()], None).await.expect("again");
    assert_eq!(again.present, [shop]);
    assert_eq!(e.list_projects().await.expect("list").len(), 1);

    // Auto-add with a default schedule: the scheduler's tick adds the rest.
    let mut config = e.fleet_config().await.expect("config");
    config.auto_add = true;
    config.organization = Some("Acme".into());
    config.template = Some(JobTemplate {
        cron: "30 2 * * *".into(),
        timezone: "UTC".into(),
        retention: Retention {
            keep_days: Some(14),
            ..Default::default()
        },
        backup: Default::default(),
    });
    e.set_fleet_config(config).await.expect("auto-add on");
    let mut s = Scheduler::new(e.clone(), SchedulerConfig::default());
    let now = Utc::now();
    let r = s.tick(now).await.expect("tick");
    r.fleet.expect("a sync was due").await.expect("sync");
    let names: Vec<String> = e
        .list_projects()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names.contains(&"shop-production (staging)".to_owned()),
        "{names:?}"
    );
    assert_eq!(e.list_jobs().await.expect("jobs").len(), 3);
    // Not due again within the interval.
    assert!(s.tick(now).await.expect("tick").fleet.is_none());

    // A project created on the platform (and another organization's, left
    // out) is picked up on the next tick after the interval; a paused one
    // shows as paused.
    let mut other = project("otherorgeeeeeeeeeeee", "elsewhere", "ACTIVE_HEALTHY");
    other["organization_id"] = "other".into();
    api.route(
        "/v1/projects",
        json!([
            project(shop, "shop-production", "ACTIVE_HEALTHY"),
            project(blog, "blog", "INACTIVE"),
            project(later, "later-app", "COMING_UP"),
            other
        ]),
    );
    let r = s
        .tick(now + chrono::Duration::minutes(16))
        .await
        .expect("tick");
    r.fleet.expect("a sync was due").await.expect("sync");
    let later_p = e.project("later-app").await.expect("picked up");
    assert_eq!(later_p.project_ref, later);
    assert!(
        e.project("elsewhere").await.is_err(),
        "another organization's"
    );
    assert_eq!(e.list_jobs().await.expect("jobs").len(), 4);
    let overview = e
        .overview("1970-01-01T00:00:00Z".into())
        .await
        .expect("overview");
    let status = |name: &str| {
        overview
            .projects
            .iter()
            .find(|s| s.project.name == name)
            .and_then(|s| s.platform_status.clone())
            .map(|p| p.label())
    };
    assert_eq!(status("blog"), Some("paused"));
    assert_eq!(status("shop-production"), Some("active"));
    assert_eq!(status("later-app"), Some("starting"));
    let region = overview
        .projects
        .iter()
        .find(|s| s.project.name == "blog")
        .and_then(|s| s.platform_status.clone())
        .and_then(|p| p.region);
    assert_eq!(region.as_deref(), Some("eu-west-1"));
    let audit = cli(dir, &["audit", "--action", "fleet.", "--json"], &env, None);
    assert!(
        stdout(&audit).contains("fleet.auto_add"),
        "{}",
        stdout(&audit)
    );

    // The token went only to the API, in its header; never stored in clear.
    assert!(api.seen_auth().iter().any(|a| a.contains(TOKEN)));
    assert!(files_containing(dir, TOKEN.as_bytes()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_settings_and_errors_are_clear() {
    let t = unlocked_engine().await;
    let e = &t.engine;
    // No token yet: a clear answer with the way to give one.
    let err = e.fleet_projects(None).await.expect_err("no token");
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(
        err.hint
            .as_deref()
            .is_some_and(|h| h.contains("fleet token")),
        "{err:?}"
    );
    for (config, says) in [
        (
            FleetConfig {
                api_url: "http://api.example.com".into(),
                ..Default::default()
            },
            "must be https",
        ),
        (
            FleetConfig {
                interval_minutes: 0,
                ..Default::default()
            },
            "interval",
        ),
        (
            FleetConfig {
                template: Some(JobTemplate {
                    cron: "0 3 * *".into(),
                    timezone: String::new(),
                    retention: Retention::default(),
                    backup: Default::default(),
                }),
                ..Default::default()
            },
            "field",
        ),
    ] {
        let err = e.set_fleet_config(config).await.expect_err(says);
        assert!(err.message.contains(says), "{err}");
    }
    // An API that does not answer: a connection error naming it, nothing stored.
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    e.set_fleet_config(FleetConfig {
        api_url: format!("http://127.0.0.1:{port}"),
        ..Default::default()
    })
    .await
    .expect("local api");
    let err = e
        .set_fleet_token(Secret::new(TOKEN))
        .await
        .expect_err("nobody answers");
    assert_eq!(err.kind, ErrorKind::Connection, "{err:?}");
    assert!(err.message.contains("Management API"), "{err}");
    assert!(!err.message.contains(TOKEN));
    assert!(!e.has_fleet_token().await.expect("has"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_s_own_access_token_gives_its_platform_status() {
    let api = ManagementApi::start();
    let r = "ownaaaaaaaaaaaaaaaaa";
    api.route(&format!("/v1/projects/{r}"), project(r, "own", "RESTORING"));
    let t = unlocked_engine().await;
    let e = &t.engine;
    e.set_fleet_config(FleetConfig {
        api_url: api.url(),
        ..Default::default()
    })
    .await
    .expect("api url");
    // No account token: nothing to sync.
    let mut s = Scheduler::new(e.clone(), SchedulerConfig::default());
    let mut mine =
        crate::support::engine::input("own", "postgresql://postgres@127.0.0.1:5432/postgres");
    mine.project_ref = r.into();
    let p = e.add_project(mine).await.expect("project");
    assert!(s.tick(Utc::now()).await.expect("tick").fleet.is_none());
    // The token given in the project form is enough for its own status.
    e.edit_project(
        &p.id,
        supabackup::engine::ProjectPatch {
            access_token: Some(Secret::new(TOKEN)),
            ..Default::default()
        },
    )
    .await
    .expect("token");
    let tick = s.tick(Utc::now()).await.expect("tick");
    tick.fleet.expect("a sync is due").await.expect("sync");
    let overview = e
        .overview("1970-01-01T00:00:00Z".into())
        .await
        .expect("overview");
    let st = overview.projects[0]
        .platform_status
        .clone()
        .expect("status");
    assert_eq!(st.label(), "restoring");
    assert!(!st.is_up());
}
