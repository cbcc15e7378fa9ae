//! Replace mode without collateral damage. Before anything runs, the
//! target's catalog is searched for every object outside the schemas being
//! replaced that depends on something inside them (columns of their types,
//! views, foreign keys, defaults, policies, triggers and functions calling
//! their functions, event triggers, …, and what depends on those in turn).
//! The restore refuses while any of them would be lost, unless the backup
//! brings it back or the user accepted it by name.
//!
//! Inside the restore's transaction the same rule is enforced: the objects
//! outside the scope are listed before the schemas are emptied, and again
//! after; anything gone that was neither accepted nor is restored fails the
//! transaction. So no CASCADE ever drops something the user was not shown.

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;
use tokio_postgres::Client;

use crate::engine::error::{Error, Result};

/// An object outside the scope that replacing the scope would drop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependent {
    /// As PostgreSQL describes it, e.g. `column mood of table app.t`.
    pub object: String,
    /// What in the scope it depends on, e.g. `type public.mood`.
    pub depends_on: String,
    /// The backup restores it afterwards.
    pub recreated: bool,
    /// The user accepted to lose it (`--allow-drop`).
    pub accepted: bool,
    #[serde(skip)]
    pub classid: u32,
    #[serde(skip)]
    pub objid: u32,
    #[serde(skip)]
    pub objsubid: i32,
}

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn text_array(items: &[String]) -> String {
    if items.is_empty() {
        return "ARRAY[]::text[]".into();
    }
    format!(
        "ARRAY[{}]::text[]",
        items
            .iter()
            .map(|s| sql_literal(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The namespace of a referenced object, for the catalogs that have one.
const REF_NAMESPACE: &str = "CASE d.refclassid
      WHEN 'pg_class'::regclass THEN (SELECT relnamespace FROM pg_class WHERE oid = d.refobjid)
      WHEN 'pg_proc'::regclass THEN (SELECT pronamespace FROM pg_proc WHERE oid = d.refobjid)
      WHEN 'pg_type'::regclass THEN (SELECT typnamespace FROM pg_type WHERE oid = d.refobjid)
      WHEN 'pg_namespace'::regclass THEN d.refobjid
      WHEN 'pg_extension'::regclass THEN (SELECT extnamespace FROM pg_extension WHERE oid = d.refobjid)
      WHEN 'pg_collation'::regclass THEN (SELECT collnamespace FROM pg_collation WHERE oid = d.refobjid)
      WHEN 'pg_operator'::regclass THEN (SELECT oprnamespace FROM pg_operator WHERE oid = d.refobjid)
      WHEN 'pg_opclass'::regclass THEN (SELECT opcnamespace FROM pg_opclass WHERE oid = d.refobjid)
      WHEN 'pg_opfamily'::regclass THEN (SELECT opfnamespace FROM pg_opfamily WHERE oid = d.refobjid)
      WHEN 'pg_ts_config'::regclass THEN (SELECT cfgnamespace FROM pg_ts_config WHERE oid = d.refobjid)
      WHEN 'pg_ts_dict'::regclass THEN (SELECT dictnamespace FROM pg_ts_dict WHERE oid = d.refobjid)
      WHEN 'pg_conversion'::regclass THEN (SELECT connamespace FROM pg_conversion WHERE oid = d.refobjid)
      WHEN 'pg_constraint'::regclass THEN (SELECT connamespace FROM pg_constraint WHERE oid = d.refobjid)
    END";

/// A dependent, mapped to the object a person knows (a view, not its
/// rewrite rule), with the schema it lives in (a trigger, policy, rule or
/// column default: its table's); rows outside the replaced schemas only.
const MAPPED: &str = "SELECT m.classid, m.objid, m.objsubid, m.refdescr,
           pg_describe_object(m.classid, m.objid, m.objsubid) AS descr
    FROM (SELECT CASE WHEN x.classid = 'pg_rewrite'::regclass AND rw.rulename = '_RETURN'
                      THEN 'pg_class'::regclass::oid ELSE x.classid END AS classid,
                 CASE WHEN x.classid = 'pg_rewrite'::regclass AND rw.rulename = '_RETURN'
                      THEN rw.ev_class ELSE x.objid END AS objid,
                 CASE WHEN x.classid = 'pg_rewrite'::regclass AND rw.rulename = '_RETURN'
                      THEN 0 ELSE x.objsubid END AS objsubid,
                 x.refdescr,
                 (SELECT nspname::text FROM pg_namespace WHERE oid = CASE x.classid
                    WHEN 'pg_class'::regclass THEN (SELECT relnamespace FROM pg_class WHERE oid = x.objid)
                    WHEN 'pg_rewrite'::regclass THEN (SELECT relnamespace FROM pg_class WHERE oid = rw.ev_class)
                    WHEN 'pg_trigger'::regclass THEN (SELECT c.relnamespace FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.oid = x.objid)
                    WHEN 'pg_policy'::regclass THEN (SELECT c.relnamespace FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE p.oid = x.objid)
                    WHEN 'pg_attrdef'::regclass THEN (SELECT c.relnamespace FROM pg_attrdef a JOIN pg_class c ON c.oid = a.adrelid WHERE a.oid = x.objid)
                    WHEN 'pg_constraint'::regclass THEN (SELECT connamespace FROM pg_constraint WHERE oid = x.objid)
                    WHEN 'pg_proc'::regclass THEN (SELECT pronamespace FROM pg_proc WHERE oid = x.objid)
                    WHEN 'pg_type'::regclass THEN (SELECT typnamespace FROM pg_type WHERE oid = x.objid)
                    WHEN 'pg_statistic_ext'::regclass THEN (SELECT stxnamespace FROM pg_statistic_ext WHERE oid = x.objid)
                    WHEN 'pg_operator'::regclass THEN (SELECT oprnamespace FROM pg_operator WHERE oid = x.objid)
                    WHEN 'pg_opclass'::regclass THEN (SELECT opcnamespace FROM pg_opclass WHERE oid = x.objid)
                    WHEN 'pg_opfamily'::regclass THEN (SELECT opfnamespace FROM pg_opfamily WHERE oid = x.objid)
                    WHEN 'pg_collation'::regclass THEN (SELECT collnamespace FROM pg_collation WHERE oid = x.objid)
                    WHEN 'pg_ts_config'::regclass THEN (SELECT cfgnamespace FROM pg_ts_config WHERE oid = x.objid)
                    WHEN 'pg_ts_dict'::regclass THEN (SELECT dictnamespace FROM pg_ts_dict WHERE oid = x.objid)
                    WHEN 'pg_conversion'::regclass THEN (SELECT connamespace FROM pg_conversion WHERE oid = x.objid)
                    WHEN 'pg_extension'::regclass THEN (SELECT extnamespace FROM pg_extension WHERE oid = x.objid)
                  END) AS home
          FROM found x LEFT JOIN pg_rewrite rw ON x.classid = 'pg_rewrite'::regclass AND rw.oid = x.objid
          WHERE x.classid NOT IN ('pg_publication_rel'::regclass, 'pg_default_acl'::regclass)) m
    WHERE COALESCE(m.home, '') <> ALL ($1::text[])";

/// Every object outside `replaced` that replacing them would drop.
pub(crate) async fn dependents(client: &Client, replaced: &[String]) -> Result<Vec<Dependent>> {
    if replaced.is_empty() {
        return Ok(Vec::new());
    }
    let err = |e: tokio_postgres::Error| {
        Error::connection(format!(
            "could not list what depends on the schemas to replace: {}",
            e.as_db_error()
                .map(|d| d.message().to_owned())
                .unwrap_or_else(|| e.to_string())
        ))
    };
    client
        .batch_execute("SET search_path = ''")
        .await
        .map_err(err)?;
    let replaced_vec: Vec<String> = replaced.to_vec();
    let first = format!(
        "WITH r AS (SELECT oid, nspname FROM pg_namespace WHERE nspname = ANY ($1::text[])),
         found AS (
           SELECT d.classid, d.objid, d.objsubid,
                  pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) AS refdescr
           FROM pg_depend d JOIN r ON r.oid = ({REF_NAMESPACE})
           WHERE d.deptype IN ('n', 'a')
             -- public is emptied, not dropped: depending on it, or on an
             -- extension's object in it, loses nothing.
             AND NOT (r.nspname = 'public' AND (d.refclassid = 'pg_namespace'::regclass
                  OR EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.refclassid
                             AND e.objid = d.refobjid AND e.deptype = 'e')))
         )
         {MAPPED}"
    );
    let rows = client.query(&first, &[&replaced_vec]).await.map_err(err)?;
    let mut out: Vec<Dependent> = Vec::new();
    let mut seen: HashSet<(u32, u32, i32)> = HashSet::new();
    let mut frontier: Vec<(u32, u32, i32)> = Vec::new();
    let push = |row: &tokio_postgres::Row,
                out: &mut Vec<Dependent>,
                seen: &mut HashSet<(u32, u32, i32)>,
                frontier: &mut Vec<(u32, u32, i32)>| {
        let id: (u32, u32, i32) = (row.get(0), row.get(1), row.get(2));
        if seen.insert(id) {
            frontier.push(id);
            out.push(Dependent {
                object: row.get::<_, Option<String>>(4).unwrap_or_default(),
                depends_on: row.get::<_, Option<String>>(3).unwrap_or_default(),
                recreated: false,
                accepted: false,
                classid: id.0,
                objid: id.1,
                objsubid: id.2,
            });
        }
    };
    for row in &rows {
        push(row, &mut out, &mut seen, &mut frontier);
    }
    // What depends on those goes too (a view on a dropped view, an index
    // on a dropped column), level by level.
    let next = format!(
        "WITH f(c, o, s) AS (SELECT * FROM unnest($2::oid[], $3::oid[], $4::int4[])),
         found AS (
           SELECT d.classid, d.objid, d.objsubid,
                  pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) AS refdescr
           FROM pg_depend d JOIN f ON d.refclassid = f.c AND d.refobjid = f.o
                AND (f.s = 0 OR d.refobjsubid = f.s)
           WHERE d.deptype IN ('n', 'a')
         )
         {MAPPED}"
    );
    for _ in 0..20 {
        if frontier.is_empty() {
            break;
        }
        let level = std::mem::take(&mut frontier);
        let c: Vec<u32> = level.iter().map(|x| x.0).collect();
        let o: Vec<u32> = level.iter().map(|x| x.1).collect();
        let s: Vec<i32> = level.iter().map(|x| x.2).collect();
        let rows = client
            .query(&next, &[&replaced_vec, &c, &o, &s])
            .await
            .map_err(err)?;
        for row in &rows {
            push(row, &mut out, &mut seen, &mut frontier);
        }
    }
    let _ = client.batch_execute("RESET search_path").await;
    // A column of a table that goes anyway is not listed on its own.
    let whole: BTreeSet<(u32, u32)> = out
        .iter()
        .filter(|d| d.objsubid == 0)
        .map(|d| (d.classid, d.objid))
        .collect();
    out.retain(|d| d.objsubid == 0 || !whole.contains(&(d.classid, d.objid)));
    Ok(out)
}

/// Objects outside the replaced schemas, as `(description, parent)`: the
/// query the in-transaction check runs before and after emptying them.
fn objects_outside(replaced: &[String]) -> String {
    let r = text_array(replaced);
    let dropped: Vec<String> = replaced
        .iter()
        .filter(|s| s.as_str() != "public")
        .cloned()
        .collect();
    let d = text_array(&dropped);
    format!(
        "SELECT pg_describe_object(x.classid, x.objid, x.objsubid) AS descr, x.parent FROM (
  WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname <> ALL ({r})
              AND nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp)')
  SELECT 'pg_class'::regclass::oid AS classid, c.oid AS objid, 0 AS objsubid, NULL::text AS parent
    FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c', 'i', 'I')
  UNION ALL SELECT 'pg_class'::regclass::oid, a.attrelid, a.attnum, pg_describe_object('pg_class'::regclass, a.attrelid, 0)
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    WHERE c.relnamespace IN (SELECT oid FROM ns) AND c.relkind IN ('r', 'p', 'f') AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL SELECT 'pg_proc'::regclass::oid, p.oid, 0, NULL FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ns)
  UNION ALL SELECT 'pg_type'::regclass::oid, t.oid, 0, NULL FROM pg_type t
    WHERE t.typnamespace IN (SELECT oid FROM ns) AND t.typtype IN ('b', 'd', 'e', 'r')
  UNION ALL SELECT 'pg_constraint'::regclass::oid, co.oid, 0,
      CASE WHEN co.conrelid <> 0 THEN pg_describe_object('pg_class'::regclass, co.conrelid, 0)
           ELSE pg_describe_object('pg_type'::regclass, co.contypid, 0) END
    FROM pg_constraint co WHERE co.connamespace IN (SELECT oid FROM ns)
  UNION ALL SELECT 'pg_trigger'::regclass::oid, tg.oid, 0, pg_describe_object('pg_class'::regclass, tg.tgrelid, 0)
    FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid WHERE NOT tg.tgisinternal AND c.relnamespace IN (SELECT oid FROM ns)
  UNION ALL SELECT 'pg_policy'::regclass::oid, po.oid, 0, pg_describe_object('pg_class'::regclass, po.polrelid, 0)
    FROM pg_policy po JOIN pg_class c ON c.oid = po.polrelid WHERE c.relnamespace IN (SELECT oid FROM ns)
  UNION ALL SELECT 'pg_rewrite'::regclass::oid, rw.oid, 0, pg_describe_object('pg_class'::regclass, rw.ev_class, 0)
    FROM pg_rewrite rw JOIN pg_class c ON c.oid = rw.ev_class WHERE rw.rulename <> '_RETURN' AND c.relnamespace IN (SELECT oid FROM ns)
  UNION ALL SELECT 'pg_attrdef'::regclass::oid, ad.oid, 0, pg_describe_object('pg_class'::regclass, ad.adrelid, 0)
    FROM pg_attrdef ad JOIN pg_class c ON c.oid = ad.adrelid WHERE c.relnamespace IN (SELECT oid FROM ns)
  UNION ALL SELECT 'pg_event_trigger'::regclass::oid, et.oid, 0, NULL FROM pg_event_trigger et
  UNION ALL SELECT 'pg_extension'::regclass::oid, ex.oid, 0, NULL FROM pg_extension ex
    WHERE ex.extnamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname = ANY ({d}))
) x"
    )
}

/// Run inside the restore's transaction before the scope is emptied.
pub(crate) fn before_emptying(replaced: &[String]) -> String {
    format!(
        "SELECT pg_catalog.set_config('search_path', '', false);\n\
         CREATE TEMP TABLE supabackup_outside ON COMMIT DROP AS {};\n",
        objects_outside(replaced)
    )
}

/// Run after: fails the transaction when something outside the scope is
/// gone that is neither in `allowed` (accepted or restored) nor part of an
/// allowed object.
pub(crate) fn after_emptying(replaced: &[String], allowed: &[String]) -> String {
    let allowed = text_array(allowed);
    format!(
        "DO $supabackup$ DECLARE lost text; BEGIN
  SELECT string_agg(o.descr, '; ' ORDER BY o.descr) INTO lost FROM supabackup_outside o
  WHERE o.descr IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM ({now}) n WHERE n.descr = o.descr)
    AND o.descr <> ALL ({allowed}) AND (o.parent IS NULL OR o.parent <> ALL ({allowed}));
  IF lost IS NOT NULL THEN
    RAISE EXCEPTION 'supabackup: replacing the scope would also drop objects outside it: %', lost
      USING HINT = 'nothing was changed; preview the restore to see them, then widen the scope or accept each with --allow-drop';
  END IF;
END $supabackup$;\n",
        now = objects_outside(replaced)
    )
}

/// Empties the replaced schemas: public object by object (it belongs to the
/// database and stays, with extensions installed in it), any other schema
/// dropped whole. The check around it ([`before_emptying`],
/// [`after_emptying`]) makes sure nothing else goes.
pub(crate) fn empty_schemas(schemas: &[String]) -> String {
    let mut out = String::new();
    for s in schemas {
        if s != "public" {
            out.push_str(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE;\n",
                s.replace('"', "\"\"")
            ));
            continue;
        }
        let not_ext = |cat: &str, col: &str| {
            format!(
                "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{cat}'::regclass AND d.objid = {col} AND d.deptype = 'e')"
            )
        };
        out.push_str(&format!(
            "DO $supabackup$ DECLARE r record; BEGIN
  FOR r IN SELECT format('DROP %s IF EXISTS %s CASCADE',
                 CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                                WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'c' THEN 'TYPE' ELSE 'TABLE' END, c.oid::regclass) AS stmt
           FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r','p','v','m','S','f','c')
             AND {ext_class}
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                               AND c.relkind = 'S' AND d.deptype IN ('a', 'i'))
             AND NOT c.relispartition
           ORDER BY c.relkind IN ('v', 'm') DESC
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN SELECT format('DROP %s IF EXISTS %s CASCADE',
                 CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, p.oid::regprocedure) AS stmt
           FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND {ext_proc}
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN SELECT format('DROP %s IF EXISTS %s CASCADE', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype) AS stmt
           FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('b', 'e', 'd', 'r', 'm')
             AND NOT EXISTS (SELECT 1 FROM pg_type el WHERE el.typarray = t.oid)
             AND NOT EXISTS (SELECT 1 FROM pg_range rg WHERE rg.rngmultitypid = t.oid)
             AND {ext_type}
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN SELECT format('DROP OPERATOR IF EXISTS %s CASCADE', o.oid::regoperator) AS stmt
           FROM pg_operator o WHERE o.oprnamespace = 'public'::regnamespace AND {ext_oper}
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN SELECT format('DROP OPERATOR FAMILY IF EXISTS public.%I USING %I CASCADE', f.opfname, am.amname) AS stmt
           FROM pg_opfamily f JOIN pg_am am ON am.oid = f.opfmethod
           WHERE f.opfnamespace = 'public'::regnamespace AND {ext_opf}
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN SELECT format('DROP COLLATION IF EXISTS public.%I CASCADE', co.collname) AS stmt
           FROM pg_collation co WHERE co.collnamespace = 'public'::regnamespace AND {ext_coll}
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN SELECT format('DROP TEXT SEARCH CONFIGURATION IF EXISTS %s CASCADE', cf.oid::regconfig) AS stmt
           FROM pg_ts_config cf WHERE cf.cfgnamespace = 'public'::regnamespace AND {ext_cfg}
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN SELECT format('DROP TEXT SEARCH DICTIONARY IF EXISTS %s CASCADE', dc.oid::regdictionary) AS stmt
           FROM pg_ts_dict dc WHERE dc.dictnamespace = 'public'::regnamespace AND {ext_dict}
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN SELECT format('DROP CONVERSION IF EXISTS public.%I CASCADE', cv.conname) AS stmt
           FROM pg_conversion cv WHERE cv.connamespace = 'public'::regnamespace AND {ext_conv}
  LOOP EXECUTE r.stmt; END LOOP;
END $supabackup$;\n",
            ext_class = not_ext("pg_class", "c.oid"),
            ext_proc = not_ext("pg_proc", "p.oid"),
            ext_type = not_ext("pg_type", "t.oid"),
            ext_oper = not_ext("pg_operator", "o.oid"),
            ext_opf = not_ext("pg_opfamily", "f.oid"),
            ext_coll = not_ext("pg_collation", "co.oid"),
            ext_cfg = not_ext("pg_ts_config", "cf.oid"),
            ext_dict = not_ext("pg_ts_dict", "dc.oid"),
            ext_conv = not_ext("pg_conversion", "cv.oid"),
        ));
    }
    out
}

/// Resets a surviving schema's privileges to its owner's defaults, so the
/// backup's are applied exactly.
pub(crate) fn reset_schema_acl(schema: &str) -> String {
    format!(
        "DO $supabackup$ DECLARE r record; BEGIN
  FOR r IN SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS who
           FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
           WHERE n.nspname = {lit} AND a.grantee <> n.nspowner
  LOOP EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %s', {lit}, r.who); END LOOP;
  EXECUTE format('GRANT ALL ON SCHEMA %I TO %I', {lit}, (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = {lit}));
END $supabackup$;\n",
        lit = sql_literal(schema)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_quote_what_they_embed() {
        let sql = after_emptying(&["pub'lic".into()], &["view a.b'c".into()]);
        assert!(
            sql.contains("'pub''lic'") && sql.contains("'view a.b''c'"),
            "{sql}"
        );
        assert!(before_emptying(&[]).contains("ARRAY[]::text[]"));
        let drops = empty_schemas(&["public".into(), "we\"ird".into()]);
        assert!(
            drops.contains("DROP SCHEMA IF EXISTS \"we\"\"ird\" CASCADE;"),
            "{drops}"
        );
        assert!(drops.contains("'public'::regnamespace"));
    }
}
