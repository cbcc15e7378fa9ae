//! Tests of the database comparison used to judge restores
//! (`support::compare`): equal databases compare equal, and every kind of
//! change a broken restore could cause is reported on the right object and
//! aspect.

use std::collections::BTreeSet;

use crate::support::compare::{self, CompareOptions, Diff};
use crate::support::pg::{TestDb, cluster};

/// `public.handle_new_user()` of the fixture with one comment line changed.
const HANDLE_NEW_USER_CHANGED: &str = r#"
CREATE OR REPLACE FUNCTION public.handle_new_user() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $fn$
begin
-- create a public profile for every NEW auth user
-- (deterministic: derive everything from the new row)
  insert into public.profiles (id, username, full_name, avatar_url, created_at, updated_at)
  values (
    new.id,
    coalesce(new.raw_user_meta_data ->> 'user_name', 'user_' || left(replace(new.id::text, '-', ''), 12)),
    new.raw_user_meta_data ->> 'full_name',
    new.raw_user_meta_data ->> 'avatar_url',
    coalesce(new.created_at, '2024-01-01 00:00:00+00'),
    coalesce(new.created_at, '2024-01-01 00:00:00+00')
  );
  return new;
end;
$fn$;
"#;

fn fixture_db(prefix: &str) -> TestDb {
    let db = cluster().create_db(prefix);
    db.load_fixture();
    db
}

fn all() -> CompareOptions {
    CompareOptions {
        schemas: None,
        include_roles: true,
    }
}

fn render(diffs: &[Diff]) -> String {
    diffs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn compare_equal_fixtures_then_every_mutation_is_reported() {
    let a = fixture_db("cmp_src");
    let b = fixture_db("cmp_dst");

    let diffs = compare::compare(&a, &b, &all());
    assert!(
        diffs.is_empty(),
        "two loads of the fixture must compare equal, got {} diff(s):\n{}",
        diffs.len(),
        render(&diffs)
    );
    // assert_same agrees (must not panic).
    compare::assert_same(&a, &b, &all());

    // The snapshot really covers what it claims to (a comparison that reads
    // nothing would also "compare equal").
    let snap = compare::snapshot(&a, &all());
    let has = |object: &str, aspect: &str| {
        snap.get(object)
            .and_then(|aspects| aspects.get(aspect))
            .cloned()
            .unwrap_or_else(|| panic!("snapshot lacks {object} [{aspect}]"))
    };
    // Row counts as the database itself reports them (partitioned parents
    // include their partitions' rows).
    for (object, table) in [
        ("table public.orders", "public.orders"),
        ("table public.events", "public.events"),
        ("table public.events_2024", "public.events_2024"),
        ("table auth.users", "auth.users"),
        ("table storage.objects", "storage.objects"),
        ("table public.edge_cases", "public.edge_cases"),
        (
            "materialized view public.product_sales_mv",
            "public.product_sales_mv",
        ),
    ] {
        let count = a.psql(&format!("SELECT count(*) FROM {table}"));
        assert_ne!(count, "0", "{table} is empty in the fixture");
        let data = has(object, "data");
        assert!(
            data.starts_with(&format!("{count} rows, md5 "))
                && data.len() == count.len() + " rows, md5 ".len() + 32,
            "{object} [data] = {data:?}, expected {count} rows and an md5"
        );
    }
    assert_eq!(
        has("table billing.invoices", "force row level security"),
        "true"
    );
    assert_eq!(has("table public.messages", "replica identity"), "f");
    assert_eq!(has("table public.cache_entries", "persistence"), "u");
    assert_eq!(
        has("table column public.orders.status", "type"),
        "public.order_status"
    );
    assert!(has("table column public.profiles.username", "acl").contains("anon=r/postgres"));
    assert_eq!(
        has("type public.order_status", "labels"),
        "'pending', 'paid', 'shipped', 'cancelled', 'refunded'"
    );
    assert!(has("function public.handle_new_user()", "definition").contains("SECURITY DEFINER"));
    assert_eq!(
        has("function public.handle_new_user()", "config"),
        r#"{"search_path=\"\""}"#
    );
    assert_eq!(has("sequence billing.invoice_number_seq", "start"), "1000");
    let last = a.psql("SELECT last_value FROM public.orders_id_seq");
    assert_eq!(
        has("sequence public.orders_id_seq", "state"),
        format!("last_value={last}, is_called=true")
    );
    assert_eq!(
        has(
            "policy \"Banned users cannot post\" on public.messages",
            "permissive"
        ),
        "false"
    );
    assert!(has("publication supabase_realtime", "table public.messages").starts_with('{'));
    assert_eq!(has("extension citext", "schema"), "extensions");
    assert!(has("role metabase_reader", "member of reporting_ro").contains("admin_option"));
    assert_eq!(has("role metabase_reader", "connection limit"), "5");
    assert!(
        has(
            "default acl for role postgres in schema billing on tables",
            "acl"
        )
        .contains("reporting_ro=r/postgres")
    );
    assert!(
        has("trigger order_paid_webhook on public.orders", "definition").contains("http_request")
    );
    assert!(has("table public.products", "comment").contains("cents"));
    assert!(has("table column public.products.image", "comment").contains("Thumbnail"));
    // Skipped data is not read; its catalog is.
    assert!(
        !snap
            .get("table auth.schema_migrations")
            .is_some_and(|a| a.contains_key("data"))
    );
    assert!(
        !snap
            .get("table vault.secrets")
            .is_some_and(|a| a.contains_key("data"))
    );
    has("table vault.secrets", "owner");
    has("table auth.schema_migrations", "row level security");

    // --- mutate the second database in many independent ways ---------------------
    b.psql(
        r#"
        DELETE FROM public.documents WHERE id = 7;
        REVOKE SELECT ON public.products FROM anon;
        ALTER TABLE public.orders DISABLE ROW LEVEL SECURITY;
        ALTER TABLE public."UserSettings" FORCE ROW LEVEL SECURITY;
        DROP POLICY "Users see own order items" ON public.order_items;
        SELECT setval('billing.invoice_number_seq', 5000);
        ALTER TABLE public.products DISABLE TRIGGER products_set_updated_at;
        COMMENT ON TABLE public.orders IS 'changed by the test';
        ALTER PUBLICATION supabase_realtime DROP TABLE public.messages;
        REFRESH MATERIALIZED VIEW public.product_sales_mv WITH NO DATA;
        REVOKE SELECT (avatar_url) ON public.profiles FROM anon;
        ALTER DEFAULT PRIVILEGES IN SCHEMA billing GRANT INSERT ON TABLES TO reporting_ro;
        ALTER TABLE storage.objects ALTER COLUMN version SET DEFAULT 'v1';
        ALTER TYPE public.order_status ADD VALUE 'disputed';
        "#,
    );
    // Same function, one comment line changed (column-0 "--" lines, as in the fixture).
    b.psql(HANDLE_NEW_USER_CHANGED);
    let diffs = compare::compare(&a, &b, &all());
    let text = render(&diffs);
    let got: BTreeSet<(&str, &str)> = diffs
        .iter()
        .map(|d| (d.object.as_str(), d.aspect.as_str()))
        .collect();
    let expected: BTreeSet<(&str, &str)> = [
        ("table public.documents", "data"),
        ("table public.products", "acl"),
        ("table public.orders", "row level security"),
        ("table public.\"UserSettings\"", "force row level security"),
        (
            "policy \"Users see own order items\" on public.order_items",
            "exists",
        ),
        ("function public.handle_new_user()", "source md5"),
        ("function public.handle_new_user()", "definition"),
        ("sequence billing.invoice_number_seq", "state"),
        (
            "trigger products_set_updated_at on public.products",
            "enabled",
        ),
        ("table public.orders", "comment"),
        ("publication supabase_realtime", "table public.messages"),
        ("materialized view public.product_sales_mv", "populated"),
        ("materialized view public.product_sales_mv", "data"),
        ("table column public.profiles.avatar_url", "acl"),
        (
            "default acl for role postgres in schema billing on tables",
            "acl",
        ),
        ("table column storage.objects.version", "default"),
        ("type public.order_status", "labels"),
    ]
    .into_iter()
    .collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let unexpected: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "missing diffs: {missing:?}\nunexpected diffs: {unexpected:?}\nall diffs:\n{text}"
    );

    // Values are reported, not just names.
    let find = |object: &str, aspect: &str| {
        diffs
            .iter()
            .find(|d| d.object == object && d.aspect == aspect)
            .unwrap_or_else(|| panic!("no diff {object} [{aspect}] in\n{text}"))
    };
    let d = find("sequence billing.invoice_number_seq", "state");
    assert!(d.target.starts_with("last_value=5000"), "{d}");
    let d = find("table public.products", "acl");
    assert!(d.source.contains("anon=arwdDxt/postgres"), "{d}");
    assert!(d.target.contains("anon=awdDxt/postgres"), "{d}");
    let docs: u64 = a
        .psql("SELECT count(*) FROM public.documents")
        .parse()
        .expect("count");
    let d = find("table public.documents", "data");
    assert!(d.source.starts_with(&format!("{docs} rows")), "{d}");
    assert!(d.target.starts_with(&format!("{} rows", docs - 1)), "{d}");
    let d = find("materialized view public.product_sales_mv", "populated");
    assert_eq!((d.source.as_str(), d.target.as_str()), ("true", "false"));
    let d = find("materialized view public.product_sales_mv", "data");
    assert_eq!(d.target, compare::ABSENT);
    let d = find(
        "policy \"Users see own order items\" on public.order_items",
        "exists",
    );
    assert_eq!(
        (d.source.as_str(), d.target.as_str()),
        ("yes", compare::ABSENT)
    );
    let d = find(
        "trigger products_set_updated_at on public.products",
        "enabled",
    );
    assert_eq!((d.source.as_str(), d.target.as_str()), ("O", "D"));
    let d = find("table public.orders", "comment");
    assert_eq!(
        (d.source.as_str(), d.target.as_str()),
        (compare::ABSENT, "changed by the test")
    );
    // The long function definition is shown around its first difference.
    let line = find("function public.handle_new_user()", "definition").to_string();
    assert!(
        line.contains("NEW auth user") && line.contains("new auth user"),
        "{line}"
    );
    assert!(!line.contains('\n'), "one diff = one line: {line}");
}

#[test]
fn compare_platform_only_target_reports_everything_missing() {
    let full = fixture_db("cmp_full");
    let empty = cluster().create_db("cmp_platform");
    empty.load_platform_only();

    let diffs = compare::compare(&full, &empty, &all());
    assert!(
        diffs.len() > 200,
        "only {} diffs:\n{}",
        diffs.len(),
        render(&diffs)
    );
    let has = |object: &str, aspect: &str| {
        diffs
            .iter()
            .any(|d| d.object == object && d.aspect == aspect)
    };
    for (object, aspect) in [
        ("schema billing", "exists"),
        ("table public.orders", "exists"),
        ("function public.handle_new_user()", "exists"),
        ("trigger on_auth_user_created on auth.users", "exists"),
        (
            "policy \"Avatar images are publicly accessible.\" on storage.objects",
            "exists",
        ),
        ("extension citext", "exists"),
        ("table auth.users", "data"),
        ("table storage.objects", "data"),
        ("table supabase_functions.hooks", "data"),
        ("sequence auth.refresh_tokens_id_seq", "state"),
        ("publication supabase_realtime", "table public.messages"),
    ] {
        assert!(
            has(object, aspect),
            "no diff {object} [{aspect}] in:\n{}",
            render(&diffs)
        );
    }
    // Platform bookkeeping data is never compared, and the platform part is equal.
    for d in &diffs {
        assert!(
            !d.object.starts_with("table auth.schema_migrations")
                && !d.object.starts_with("table storage.migrations")
                && !d.object.starts_with("table supabase_functions.migrations")
                && !d.object.starts_with("table realtime.")
                && !d.object.starts_with("table vault."),
            "unexpected diff {d}"
        );
    }

    // assert_same panics with every diff, one per line.
    let result = std::panic::catch_unwind(|| compare::assert_same(&full, &empty, &all()));
    let payload = result.expect_err("assert_same must panic when databases differ");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .expect("panic message is a string");
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(
        lines.len(),
        diffs.len() + 1,
        "header + one line per diff:\n{msg}"
    );
    assert!(
        lines[0].contains(&format!("{} difference(s)", diffs.len())),
        "{}",
        lines[0]
    );
    for (line, d) in lines[1..].iter().zip(&diffs) {
        assert_eq!(*line, d.to_string());
    }
    assert!(
        msg.contains("table public.orders [exists]: source: yes | target: (absent)"),
        "{msg}"
    );

    // Restricting the schemas restricts the schema-bound diffs.
    let only_billing = CompareOptions {
        schemas: Some(vec!["billing".to_string()]),
        include_roles: false,
    };
    let diffs = compare::compare(&full, &empty, &only_billing);
    assert!(
        diffs.iter().any(|d| d.object == "table billing.invoices"),
        "{}",
        render(&diffs)
    );
    for d in &diffs {
        assert!(
            d.object.contains("billing") || d.object.starts_with("extension "),
            "diff outside the billing schema: {d}"
        );
    }
}
