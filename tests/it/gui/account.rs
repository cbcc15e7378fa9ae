//! Settings → "Supabase account": connect with a token, choose projects
//! from the (local) Management API, add them with a schedule, and see
//! their platform status on the dashboard.

use serde_json::json;
use supabackup::engine::fleet::FleetConfig;
use supabackup::ui::app::Message as M;
use supabackup::ui::screen::fleet::{Message as F, TOKEN_ID};
use supabackup::ui::screen::settings::Message as S;

use super::driver::Driver;
use crate::fleet::{ManagementApi, TOKEN, pooler, project};
use crate::support::engine::unlocked_engine;

#[tokio::test(flavor = "multi_thread")]
async fn projects_are_added_from_the_supabase_account_in_settings() {
    let api = ManagementApi::start();
    let (shop, blog) = ("shopaaaaaaaaaaaaaaaa", "blogbbbbbbbbbbbbbbbb");
    api.route("/v1/organizations", json!([{"id": "acme", "name": "Acme"}]));
    api.route(
        "/v1/projects",
        json!([
            project(shop, "shop-production", "ACTIVE_HEALTHY"),
            project(blog, "blog", "INACTIVE")
        ]),
    );
    for r in [shop, blog] {
        api.route(
            &format!("/v1/projects/{r}/config/database/pooler"),
            pooler(r),
        );
    }
    let t = unlocked_engine().await;
    t.engine
        .set_fleet_config(FleetConfig {
            api_url: api.url(),
            ..Default::default()
        })
        .await
        .expect("api url");
    let mut d = Driver::boot(t.engine.clone()).await;
    d.click("Settings");
    d.idle().await;
    d.scroll_and_type_into(TOKEN_ID, TOKEN);
    d.scroll_and_click("Connect");
    d.until("the account's projects", |a| {
        a.settings.fleet.entries.len() == 2
    })
    .await;
    d.idle().await;
    d.assert_text(&format!("shop-production · {shop} · production · active"));
    d.assert_text(&format!("blog · {blog} · development · paused"));
    d.send(M::Settings(S::Fleet(F::Toggle(shop.into(), true))));
    d.send(M::Settings(S::Fleet(F::Toggle(blog.into(), true))));
    d.assert_text("2 chosen");
    d.scroll_and_click("Add selected");
    d.until("the projects to be added", |a| {
        a.settings
            .fleet
            .entries
            .iter()
            .all(|e| e.added_as.is_some())
    })
    .await;
    d.idle().await;
    d.assert_text("here as shop-production");
    let jobs = t.engine.list_jobs().await.expect("jobs");
    assert_eq!(jobs.len(), 2, "each gets the schedule shown: {jobs:?}");
    assert!(jobs.iter().all(|j| j.cron == "0 3 * * *"));
    // Auto-add for one organization, saved from the card.
    d.send(M::Settings(S::Fleet(F::Org("Nowhere".into()))));
    d.send(M::Settings(S::Fleet(F::SaveAuto)));
    d.until("the listing", |a| a.settings.fleet.error.is_some())
        .await;
    d.idle().await;
    d.assert_text("the account has no organization 'Nowhere'");
    d.send(M::Settings(S::Fleet(F::Org("Acme".into()))));
    d.send(M::Settings(S::Fleet(F::AutoAdd(true))));
    d.send(M::Settings(S::Fleet(F::SaveAuto)));
    d.until("the listing", |a| {
        a.settings.fleet.error.is_none() && !a.settings.fleet.busy
    })
    .await;
    d.idle().await;
    let c = t.engine.fleet_config().await.expect("config");
    assert!(c.auto_add);
    assert_eq!(c.organization.as_deref(), Some("Acme"));
    assert_eq!(c.template.map(|t| t.cron), Some("0 3 * * *".into()));
    d.click("Dashboard");
    d.idle().await;
    d.assert_text("Supabase: active · eu-west-1");
    d.assert_text("Supabase: paused · eu-west-1");
}
