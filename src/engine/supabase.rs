//! What the engine knows about Supabase's platform: which schemas the
//! platform manages (left out of schema dumps, as `supabase db dump` does),
//! which of those still hold user data worth backing up, and which roles
//! are reserved by the platform.

/// Schemas the Supabase platform creates and manages. Excluded from schema
/// dumps; `pg_*` and `*timescaledb_*` are matched as patterns.
pub const MANAGED_SCHEMAS: &[&str] = &[
    "information_schema",
    "_analytics",
    "_realtime",
    "_supavisor",
    "auth",
    "extensions",
    "pgbouncer",
    "realtime",
    "storage",
    "supabase_functions",
    "supabase_migrations",
    "cron",
    "dbdev",
    "graphql",
    "graphql_public",
    "net",
    "pgmq",
    "pgsodium",
    "pgsodium_masks",
    "pgtle",
    "repack",
    "tiger",
    "tiger_data",
    "topology",
    "vault",
];

/// Managed schemas whose DATA is user data and is kept in data dumps.
pub const MANAGED_WITH_USER_DATA: &[&str] = &["auth", "storage", "supabase_functions"];

/// Platform services' own migration bookkeeping: every project has these
/// rows already, so data dumps leave them out (as `supabase db dump` does).
pub const PLATFORM_BOOKKEEPING_TABLES: &[&str] = &[
    "auth.schema_migrations",
    "storage.migrations",
    "supabase_functions.migrations",
];

/// Roles the platform owns; never dumped or re-created.
pub const RESERVED_ROLES: &[&str] = &[
    "anon",
    "authenticated",
    "authenticator",
    "dashboard_user",
    "pgbouncer",
    "pgsodium_keyholder",
    "pgsodium_keyiduser",
    "pgsodium_keymaker",
    "postgres",
    "service_role",
    "supabase_admin",
    "supabase_auth_admin",
    "supabase_functions_admin",
    "supabase_read_only_user",
    "supabase_realtime_admin",
    "supabase_replication_admin",
    "supabase_storage_admin",
    "supabase_etl_admin",
    "supabase_privileged_role",
];

/// Whether `schema` is managed by the platform (or a PostgreSQL system schema).
pub fn is_managed_schema(schema: &str) -> bool {
    schema.starts_with("pg_")
        || schema.contains("timescaledb_")
        || MANAGED_SCHEMAS.contains(&schema)
}

/// Whether a full backup's data dump covers `schema`.
pub fn data_dump_covers(schema: &str) -> bool {
    !is_managed_schema(schema) || MANAGED_WITH_USER_DATA.contains(&schema)
}

/// Whether `role` is reserved by the platform (or a `pg_*` built-in role).
pub fn is_reserved_role(role: &str) -> bool {
    role.starts_with("pg_") || RESERVED_ROLES.contains(&role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_schemas_and_roles() {
        assert!(is_managed_schema("auth"));
        assert!(is_managed_schema("pg_toast"));
        assert!(is_managed_schema("_timescaledb_internal"));
        assert!(!is_managed_schema("public"));
        assert!(data_dump_covers("auth"));
        assert!(data_dump_covers("public"));
        assert!(!data_dump_covers("vault"));
        assert!(is_reserved_role("anon"));
        assert!(is_reserved_role("pg_read_all_data"));
        assert!(!is_reserved_role("app_reader"));
    }
}
