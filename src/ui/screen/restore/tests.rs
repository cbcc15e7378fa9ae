//! The wizard's state machine, driven by messages.
use super::*;

fn backup(id: &str, project: &str) -> BackupRecord {
    BackupRecord {
        id: id.into(),
        project_id: Some(format!("id-{project}")),
        project_name: project.into(),
        project_ref: "abc".into(),
        job_id: None,
        backup_type: "full".into(),
        status: "completed".into(),
        file_path: None,
        file_size: Some(10),
        checksum: None,
        error_message: None,
        created_at: "2024-05-01T00:00:00Z".into(),
        started_at: None,
        completed_at: None,
        verified_at: None,
        verified_restorable_at: None,
        local_state: "present".into(),
    }
}

fn project(name: &str, env: Environment) -> Project {
    Project {
        id: format!("id-{name}"),
        name: name.into(),
        slug: name.to_lowercase(),
        project_ref: "abc".into(),
        db_url: "postgresql://u@h/db".into(),
        environment: env,
        organization_id: None,
        description: None,
        has_db_password: false,
        ca_cert: None,
        created_at: String::new(),
        updated_at: String::new(),
    }
}

#[tokio::test]
async fn steps_validate_and_go_back_and_forth() {
    let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
    let mut r = Restore::default();
    let _ = r.update(
        Message::Loaded(Ok((
            vec![backup("b1", "Shop")],
            vec![
                project("Shop", Environment::Production),
                project("Dev", Environment::Development),
            ],
            Vec::new(),
        ))),
        &ctx,
    );
    let _ = r.update(Message::Next, &ctx);
    assert_eq!(r.step, Step::Backup, "a backup is needed");
    assert!(r.error.is_some());
    let _ = r.update(Message::PickBackup("b1".into()), &ctx);
    let _ = r.update(Message::Next, &ctx);
    assert_eq!(r.step, Step::Target);
    let _ = r.update(Message::TargetKind(TargetKind::Url), &ctx);
    let _ = r.update(Message::Url("not a url".into()), &ctx);
    let _ = r.update(Message::Next, &ctx);
    assert_eq!(r.step, Step::Target, "the URL must parse");
    let _ = r.update(Message::TargetKind(TargetKind::Same), &ctx);
    assert!(r.needs_typed_confirmation(), "Shop is production");
    let _ = r.update(Message::Next, &ctx);
    assert_eq!(r.step, Step::Scope);
    let _ = r.update(Message::Roles(false), &ctx);
    let _ = r.update(Message::Schema(false), &ctx);
    let _ = r.update(Message::Data(false), &ctx);
    let _ = r.update(Message::Next, &ctx);
    assert_eq!(r.step, Step::Scope, "nothing to restore");
    let _ = r.update(Message::Data(true), &ctx);
    let _ = r.update(Message::Schemas("public".into()), &ctx);
    let _ = r.update(Message::Tables("public.orders".into()), &ctx);
    let _ = r.update(Message::Next, &ctx);
    assert!(r.error.as_deref().is_some_and(|e| e.contains("not both")));
    let _ = r.update(Message::Schemas(String::new()), &ctx);
    let _ = r.update(Message::Next, &ctx);
    assert_eq!(r.step, Step::Mode);
    let _ = r.update(Message::Mode(RestoreMode::Replace), &ctx);
    let a = r.update(Message::Next, &ctx);
    assert_eq!(r.step, Step::Preview);
    assert!(a.has_task() && r.previewing);
    let req = r.request().expect("request");
    assert_eq!(req.target, RestoreTarget::Project("id-Shop".into()));
    assert_eq!(req.scope.tables, ["public.orders"]);
    assert_eq!(req.mode, Some(RestoreMode::Replace));
    // No moving on before a preview allows it.
    let _ = r.update(Message::Next, &ctx);
    assert_eq!(r.step, Step::Preview);
    let _ = r.update(Message::Back, &ctx);
    assert_eq!(r.step, Step::Mode);
    assert!(r.preview.is_none(), "going back drops the preview");
    // A late preview answer after going back is ignored.
    let _ = r.update(Message::Previewed(Err(Error::connection("late"))), &ctx);
    assert!(r.preview.is_none());
    let _ = r.update(Message::Escape, &ctx);
    assert_eq!(r.step, Step::Scope);
}

#[tokio::test]
async fn production_targets_need_the_typed_name() {
    let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
    let mut r = Restore::default();
    let _ = r.update(
        Message::Loaded(Ok((
            vec![backup("b1", "Shop")],
            vec![project("Shop", Environment::Production)],
            Vec::new(),
        ))),
        &ctx,
    );
    let _ = r.start_from("b1".into(), &ctx);
    assert_eq!(r.step, Step::Target);
    r.step = Step::Confirm;
    assert!(!r.confirmed());
    assert!(!r.update(Message::Start, &ctx).has_task());
    let _ = r.update(Message::ConfirmText("shop".into()), &ctx);
    assert!(!r.confirmed(), "the exact name");
    let _ = r.update(Message::ConfirmText("Shop".into()), &ctx);
    assert!(r.confirmed());
    let a = r.update(Message::Start, &ctx);
    assert!(a.has_task());
    assert_eq!(r.step, Step::Progress);
    assert!(
        r.activity()
            .is_some_and(|a| a.starts_with("restoring Shop"))
    );
    let _ = r.update(Message::Cancel, &ctx);
    assert!(r.running.as_ref().is_some_and(|x| x.cancelling));
    let a = r.update(Message::Finished(Err(Error::cancelled())), &ctx);
    assert!(r.running.is_none());
    assert_eq!(r.step, Step::Result);
    assert!(
        a.effects
            .iter()
            .any(|e| matches!(e, Effect::Notice(n) if n.title.contains("cancelled")))
    );
}

fn record(id: &str, status: &str, committed: Option<bool>, jobs: u8) -> RestoreRecord {
    RestoreRecord {
        id: id.into(),
        backup_id: "b1".into(),
        target_project_id: Some("id-Dev".into()),
        target: "Dev".into(),
        scope: serde_json::Value::Null,
        mode: "replace".into(),
        status: status.into(),
        snapshot_backup_id: Some("snap".into()),
        rollback_of: None,
        error_message: None,
        started_at: String::new(),
        completed_at: None,
        committed,
        allow_drop: Vec::new(),
        jobs,
    }
}

#[tokio::test]
async fn a_parallel_load_is_chosen_and_its_partial_failure_offers_the_rollback() {
    let (ctx, _dir, _fake) = crate::ui::testing::ctx().await;
    let mut r = Restore::default();
    let lists = |history| {
        Message::Loaded(Ok((
            vec![backup("b1", "Dev")],
            vec![project("Dev", Environment::Development)],
            history,
        )))
    };
    let _ = r.update(lists(Vec::new()), &ctx);
    let _ = r.start_from("b1".into(), &ctx);
    assert_eq!(
        r.request().expect("request").jobs,
        1,
        "one transaction by default"
    );
    let _ = r.update(Message::Jobs(4), &ctx);
    assert_eq!(r.request().expect("request").jobs, 4);
    let _ = r.update(Message::Jobs(200), &ctx);
    assert_eq!(r.jobs, crate::engine::restore::MAX_JOBS);
    let _ = r.update(Message::Jobs(3), &ctx);
    r.step = Step::Confirm;
    assert!(r.update(Message::Start, &ctx).has_task());
    let _ = r.update(
        Message::Progress(RestoreProgress {
            restore_id: "r-par".into(),
            phase: crate::engine::restore::RestorePhase::Loading,
            bytes_applied: 10,
            total_bytes: 100,
            rate: 1.0,
            eta_secs: None,
            elapsed_secs: 1.0,
        }),
        &ctx,
    );
    let a = r.update(Message::Finished(Err(Error::cancelled())), &ctx);
    assert!(
        a.effects
            .iter()
            .any(|e| matches!(e, Effect::Notice(n) if n.title.contains("partly restored"))),
        "a cancelled parallel load does not claim nothing changed"
    );
    assert_eq!(r.failed_id.as_deref(), Some("r-par"));
    assert!(
        !r.can_roll_back(),
        "not before its record says it changed the target"
    );
    // The record says the first transaction committed: rollback is offered.
    let _ = r.update(
        lists(vec![record("r-par", "cancelled", Some(true), 3)]),
        &ctx,
    );
    assert!(r.can_roll_back());
    assert!(r.update(Message::Rollback, &ctx).has_task());
    // A failure that changed nothing offers none.
    let mut r = Restore::default();
    let _ = r.update(lists(Vec::new()), &ctx);
    let _ = r.start_from("b1".into(), &ctx);
    r.step = Step::Confirm;
    let _ = r.update(Message::Start, &ctx);
    let _ = r.update(Message::Finished(Err(Error::connection("down"))), &ctx);
    let _ = r.update(lists(vec![record("r-one", "failed", Some(false), 1)]), &ctx);
    assert!(!r.can_roll_back());
    assert!(
        !r.update(Message::RollbackOf("r-one".into()), &ctx)
            .has_task()
    );
    // A partly applied one from the recent list is rolled back from there.
    let _ = r.update(Message::StartOver, &ctx);
    let _ = r.update(
        lists(vec![record("r-old", "interrupted", Some(true), 4)]),
        &ctx,
    );
    assert!(
        r.update(Message::RollbackOf("r-old".into()), &ctx)
            .has_task()
    );
    assert!(r.running.as_ref().is_some_and(|x| x.rollback));
    assert_eq!(
        r.last_restore.as_ref().map(|x| x.id.as_str()),
        Some("r-old")
    );
}
