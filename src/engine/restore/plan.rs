//! What a restore will do, computed before anything changes: the target's
//! state, the objects to create or replace, row counts now and after,
//! schema differences, roles to create — the preview, and the plan the
//! restore then follows.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;
use tokio_postgres::Client;

use super::datafilter::DataSelection;
use super::{RestoreMode, RestoreScope};
use crate::engine::backup::manifest::{Manifest, ObjectSummary};
use crate::engine::backup::options::Artifact;
use crate::engine::error::{Error, Result};
use crate::engine::supabase;

/// A target table's rows now and after the restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableChange {
    /// `schema.table`, quoted where a name needs it.
    pub table: String,
    pub schema: String,
    pub name: String,
    /// `None` when the table does not exist yet.
    pub rows_now: Option<i64>,
    pub rows_after: u64,
}

/// The dry run's report. Computing it changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestorePreview {
    pub backup_id: String,
    pub target: String,
    pub target_server_version: String,
    pub mode: Option<RestoreMode>,
    /// Whether `run` would go ahead with this mode.
    pub allowed: bool,
    /// Why not, when not allowed.
    pub refusal: Option<String>,
    /// Objects the restore creates (`table public.orders`).
    pub create: Vec<String>,
    /// Existing objects it replaces (replace mode).
    pub replace: Vec<String>,
    /// Target objects outside the scope, left alone.
    pub left_alone: usize,
    pub tables: Vec<TableChange>,
    /// In the backup, not in the target.
    pub missing_in_target: Vec<String>,
    /// In the target (within the scope's schemas), not in the backup.
    pub extra_in_target: Vec<String>,
    /// In both, with other columns or another function body.
    pub changed: Vec<String>,
    pub roles_to_create: Vec<String>,
    pub estimated_seconds: f64,
    /// A safety snapshot of the whole target is taken first (rollback).
    pub snapshot: bool,
    pub warnings: Vec<String>,
    /// Platform objects the target already has with the same definition:
    /// skipped (a new project has them).
    pub platform_skipped: Vec<String>,
    /// Objects the target has with another definition: the target's kept.
    pub platform_differs: Vec<String>,
    /// Objects of platform schemas or of the whole database the restore
    /// creates (the user's: triggers on auth.users, storage policies,
    /// extensions, event triggers, a platform schema the target lacks).
    pub platform_created: Vec<String>,
    /// Platform objects the target lacks: left to the platform.
    pub platform_missing: Vec<String>,
    /// Objects replaced with the backup's definition (replace mode).
    pub replaced_objects: Vec<String>,
    /// What the backup left out of schema.sql, and why (recorded at backup time).
    pub left_out_at_backup: Vec<String>,
    /// Objects outside the scope that depend on what replace mode replaces.
    pub dependents: Vec<crate::engine::restore::scope::Dependent>,
    /// The name to type again (`--confirm`) before the restore runs, when
    /// the target is a production project or a URL that is not empty.
    pub confirm_name: Option<String>,
    /// Connections the load would use: 1 is one transaction; more is a
    /// parallel load (its consequences are in `warnings`).
    pub jobs: u8,
}

/// One default privilege of the restoring role, as `aclexplode` gives it.
#[derive(Debug, Clone)]
pub(crate) struct DefaultAcl {
    pub schema: String,
    pub objtype: String,
    pub grantee: Option<String>,
}

/// The target as it is before the restore.
pub(crate) struct TargetState {
    pub server_version: String,
    pub major: u32,
    pub current_user: String,
    pub objects: Vec<ObjectSummary>,
    pub schemas: HashSet<String>,
    pub roles: HashSet<String>,
    pub rows: HashMap<(String, String), i64>,
    pub default_acls: Vec<DefaultAcl>,
    pub has_history: bool,
}

impl TargetState {
    /// Whether the target holds anything of a user: an object outside the
    /// platform schemas or a row in a table the restore loads.
    pub fn is_empty(&self) -> bool {
        !self
            .objects
            .iter()
            .any(|o| !crate::engine::backup::platform::is_platform_schema(&o.schema))
            && self.rows.values().all(|n| *n == 0)
    }

    /// The target's user schemas (not the platform's).
    pub fn user_schemas(&self) -> BTreeSet<String> {
        self.schemas
            .iter()
            .filter(|s| {
                !crate::engine::backup::platform::is_platform_schema(s)
                    && s.as_str() != "supabase_migrations"
            })
            .cloned()
            .collect()
    }
}

fn qerr(what: &str) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
    move |e| {
        let detail = e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_else(|| e.to_string());
        Error::connection(format!("could not {what} on the target: {detail}"))
    }
}

pub(crate) fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub(crate) async fn inspect_target(
    client: &Client,
    tables: &[(String, String)],
) -> Result<TargetState> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int, current_user::text,
                    ARRAY(SELECT nspname::text FROM pg_namespace), ARRAY(SELECT rolname::text FROM pg_roles),
                    EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'supabase_migrations')",
            &[],
        )
        .await
        .map_err(qerr("read the server version"))?;
    let objects = crate::engine::backup::source::object_summary(client).await?;
    let mut rows = HashMap::new();
    for (s, t) in tables {
        let exists: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))",
                &[s, t],
            )
            .await
            .map_err(qerr("look up a table"))?
            .get(0);
        if exists {
            let n: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM {}.{}", quote(s), quote(t)),
                    &[],
                )
                .await
                .map_err(qerr("count rows"))?
                .get(0);
            rows.insert((s.clone(), t.clone()), n);
        }
    }
    let default_acls = client
        .query(
            "SELECT n.nspname::text, d.defaclobjtype::text, g.rolname::text
             FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace
             CROSS JOIN LATERAL aclexplode(d.defaclacl) a
             LEFT JOIN pg_roles g ON g.oid = a.grantee
             WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .await
        .map_err(qerr("read default privileges"))?
        .iter()
        .map(|r| DefaultAcl {
            schema: r.get(0),
            objtype: r.get(1),
            grantee: r.get(2),
        })
        .collect();
    let version_num: i32 = row.get(1);
    Ok(TargetState {
        server_version: row.get(0),
        major: (version_num / 10000) as u32,
        current_user: row.get(2),
        objects,
        schemas: row.get::<_, Vec<String>>(3).into_iter().collect(),
        roles: row.get::<_, Vec<String>>(4).into_iter().collect(),
        rows,
        default_acls,
        has_history: row.get(5),
    })
}

/// What the restore will do.
pub(crate) struct Plan {
    /// Whether the backup's DDL is restored (the archives' entries in scope).
    pub want_schema: bool,
    /// Non-platform schemas the restore's DDL touches.
    pub ddl_schemas: BTreeSet<String>,
    pub data: Option<DataSelection>,
    /// Only part of data.sql is loaded (then foreign keys are checked).
    pub partial_data: bool,
    pub roles: bool,
    pub history: bool,
    /// Existing non-platform schemas emptied first (replace).
    pub replace_schemas: Vec<String>,
    /// Existing tables whose rows are deleted first (replace).
    pub replace_tables: Vec<(String, String)>,
    /// Drop the target's migration history (a rollback to a backup without one).
    pub drop_history: bool,
    pub preview: RestorePreview,
}

fn label(o: &ObjectSummary) -> String {
    format!("{} {}.{}", o.kind, o.schema, o.name)
}

fn in_ddl_scope(schema: &str, scope: &RestoreScope) -> bool {
    !supabase::is_managed_schema(schema)
        && (scope.schemas.is_empty() || scope.schemas.iter().any(|s| s == schema))
}

/// The tables whose rows the scope covers, from the manifest.
pub(crate) fn scoped_tables(m: &Manifest, scope: &RestoreScope) -> Vec<(String, String)> {
    let pairs = scope.table_pairs();
    m.tables
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .filter(|(s, n)| {
            if !pairs.is_empty() {
                pairs.iter().any(|(ps, pn)| ps == s && pn == n)
            } else if !scope.schemas.is_empty() {
                scope.schemas.contains(s)
            } else {
                true
            }
        })
        .collect()
}

pub(crate) fn make_plan(
    m: &Manifest,
    scope: &RestoreScope,
    mode: Option<RestoreMode>,
    exact: bool,
    target: &TargetState,
    target_label: &str,
) -> Result<Plan> {
    let has = |a: Artifact| m.file(a).is_some();
    let table_scope = !scope.tables.is_empty();
    let want_schema = scope.schema && !table_scope;
    if want_schema && !has(Artifact::SchemaArchive) {
        return Err(Error::invalid(format!(
            "backup {} holds no schema to restore",
            m.id
        )));
    }
    if scope.data && !has(Artifact::Data) {
        return Err(Error::invalid(format!(
            "backup {} holds no data to restore",
            m.id
        )));
    }
    let want_roles = scope.roles && scope.is_whole() && has(Artifact::Roles);
    let mut warnings = Vec::new();
    if scope.roles && !scope.is_whole() {
        warnings.push("roles are restored only with a whole-backup scope".into());
    }
    for s in &scope.schemas {
        if !m.objects.iter().any(|o| &o.schema == s) && !m.tables.iter().any(|t| &t.schema == s) {
            let known: BTreeSet<&str> = m
                .objects
                .iter()
                .map(|o| o.schema.as_str())
                .chain(m.tables.iter().map(|t| t.schema.as_str()))
                .collect();
            let close = crate::engine::ident::close_matches(s, known);
            let mut e = Error::invalid(format!(
                "the backup holds nothing in schema {}",
                crate::engine::ident::render(s)
            ));
            if !close.is_empty() {
                e = e.with_hint(format!(
                    "did you mean {}? Names are matched exactly, case included",
                    close.join(", ")
                ));
            }
            return Err(e);
        }
    }
    let data_tables = if scope.data {
        scoped_tables(m, scope)
    } else {
        Vec::new()
    };
    for (s, t) in scope.table_pairs() {
        if !m.tables.iter().any(|x| x.schema == s && x.name == t) {
            let names: Vec<String> = m
                .tables
                .iter()
                .map(|x| crate::engine::ident::render_table(&x.schema, &x.name))
                .collect();
            let close = crate::engine::ident::close_matches(
                &crate::engine::ident::render_table(&s, &t),
                names.iter().map(String::as_str),
            );
            let mut e = Error::invalid(format!(
                "the backup holds no rows of table {}",
                crate::engine::ident::render_table(&s, &t)
            ));
            if !close.is_empty() {
                e = e.with_hint(format!("did you mean {}?", close.join(", ")));
            }
            return Err(e);
        }
        if !target.rows.contains_key(&(s.clone(), t.clone())) {
            return Err(
                Error::invalid(format!("table {s}.{t} does not exist in the target"))
                    .with_hint("restore its schema first (scope --schema), then its rows"),
            );
        }
    }

    let backup_objs: Vec<&ObjectSummary> = m
        .objects
        .iter()
        .filter(|o| in_ddl_scope(&o.schema, scope))
        .collect();
    let target_objs: Vec<&ObjectSummary> = target
        .objects
        .iter()
        .filter(|o| in_ddl_scope(&o.schema, scope))
        .collect();
    let key = |o: &ObjectSummary| (o.kind.clone(), o.schema.clone(), o.name.clone());
    let target_map: HashMap<_, _> = target_objs.iter().map(|o| (key(o), *o)).collect();
    let backup_map: HashMap<_, _> = backup_objs.iter().map(|o| (key(o), *o)).collect();
    let mut missing = Vec::new();
    let mut changed = Vec::new();
    let mut existing = Vec::new();
    for o in &backup_objs {
        match target_map.get(&key(o)) {
            None => missing.push(label(o)),
            Some(t) => {
                existing.push(label(o));
                if t.signature != o.signature {
                    changed.push(label(o));
                }
            }
        }
    }
    let extra: Vec<String> = target_objs
        .iter()
        .filter(|o| !backup_map.contains_key(&key(o)))
        .map(|o| label(o))
        .collect();
    let left_alone = target.objects.len() - target_objs.len();

    let mut conflicts = Vec::new();
    if want_schema {
        conflicts.extend(existing.iter().cloned());
    }
    let tables: Vec<TableChange> = data_tables
        .iter()
        .map(|(s, t)| TableChange {
            table: crate::engine::ident::render_table(s, t),
            schema: s.clone(),
            name: t.clone(),
            rows_now: target.rows.get(&(s.clone(), t.clone())).copied(),
            rows_after: m
                .tables
                .iter()
                .find(|x| &x.schema == s && &x.name == t)
                .map(|x| x.rows)
                .unwrap_or(0),
        })
        .collect();
    for t in &tables {
        if t.rows_now.unwrap_or(0) > 0 && !(want_schema && in_ddl_scope(&t.schema, scope)) {
            conflicts.push(format!("rows of table {}", t.table));
        }
    }
    let ddl_schemas: BTreeSet<String> = backup_objs
        .iter()
        .map(|o| o.schema.clone())
        .chain(
            m.tables
                .iter()
                .map(|t| t.schema.clone())
                .filter(|s| in_ddl_scope(s, scope)),
        )
        .chain(
            scope
                .schemas
                .iter()
                .filter(|s| !supabase::is_managed_schema(s))
                .cloned(),
        )
        .collect();
    let replace = mode == Some(RestoreMode::Replace);
    let replace_schemas: Vec<String> = if exact {
        // Everything of the user's goes: what the backup does not have, too.
        target
            .user_schemas()
            .into_iter()
            .chain(
                ddl_schemas
                    .iter()
                    .filter(|s| target.schemas.contains(*s))
                    .cloned(),
            )
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    } else if replace && want_schema {
        ddl_schemas
            .iter()
            .filter(|s| target.schemas.contains(*s))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let replace_tables: Vec<(String, String)> = if replace {
        data_tables
            .iter()
            .filter(|(s, t)| {
                target
                    .rows
                    .get(&(s.clone(), t.clone()))
                    .copied()
                    .unwrap_or(0)
                    > 0
                    && !replace_schemas.contains(s)
            })
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let history = scope.is_whole()
        && scope.schema
        && has(Artifact::History)
        && (!target.has_history || replace);
    let drop_history = exact && target.has_history && !has(Artifact::History);
    if scope.is_whole() && scope.schema && has(Artifact::History) && !history {
        warnings.push("the target already has migration history (supabase_migrations); it is kept — use replace mode to restore the backup's".into());
    }
    let roles_to_create: Vec<String> = if want_roles {
        m.roles
            .iter()
            .filter(|r| !target.roles.contains(*r))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let refusal = if conflicts.is_empty() || replace {
        None
    } else {
        let shown: Vec<&str> = conflicts.iter().take(5).map(String::as_str).collect();
        Some(format!(
            "the target already holds {} object(s) in scope ({}{}); choose replace mode to replace them",
            conflicts.len(),
            shown.join(", "),
            if conflicts.len() > 5 { ", …" } else { "" }
        ))
    };
    let bytes: u64 = m
        .files
        .iter()
        .filter(|f| match f.artifact {
            Artifact::Roles => want_roles,
            Artifact::SchemaArchive => want_schema,
            Artifact::Data => scope.data,
            Artifact::History => history,
            _ => false,
        })
        .map(|f| f.plain_size)
        .sum();
    let data = scope.data.then(|| {
        let mut sel = DataSelection::default();
        if table_scope {
            sel.tables = scope.table_pairs().into_iter().collect();
        } else if scope.schemas.is_empty() {
            sel.schemas = m.tables.iter().map(|t| t.schema.clone()).collect();
            sel.schemas
                .extend(m.matviews.iter().map(|v| v.schema.clone()));
            sel.schemas.extend(m.sequences.iter().filter_map(|q| {
                q.name
                    .trim_matches('"')
                    .split("\".\"")
                    .next()
                    .map(str::to_owned)
            }));
        } else {
            sel.schemas = scope.schemas.iter().cloned().collect();
        }
        sel
    });
    let preview = RestorePreview {
        backup_id: m.id.clone(),
        target: target_label.to_owned(),
        target_server_version: target.server_version.clone(),
        mode,
        allowed: refusal.is_none(),
        refusal,
        create: if want_schema {
            missing.clone()
        } else {
            Vec::new()
        },
        replace: if replace {
            conflicts.clone()
        } else {
            Vec::new()
        },
        left_alone,
        tables,
        missing_in_target: missing,
        extra_in_target: extra,
        changed,
        roles_to_create,
        estimated_seconds: 2.0 + bytes as f64 / (40.0 * 1024.0 * 1024.0),
        snapshot: true,
        warnings,
        platform_skipped: Vec::new(),
        platform_differs: Vec::new(),
        platform_created: Vec::new(),
        platform_missing: Vec::new(),
        replaced_objects: Vec::new(),
        left_out_at_backup: m.left_out.clone(),
        dependents: Vec::new(),
        confirm_name: None,
        jobs: 1,
    };
    Ok(Plan {
        want_schema,
        ddl_schemas,
        partial_data: data.is_some() && !scope.is_whole(),
        data,
        roles: want_roles,
        history,
        replace_schemas,
        replace_tables,
        drop_history,
        preview,
    })
}
