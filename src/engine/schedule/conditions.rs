//! Conditional backups: a job may run only when the database changed since
//! its last successful backup of it — rows were written (the
//! `pg_stat_database` insert/update/delete counters), its size grew or
//! shrank by more than a percentage or a number of bytes, or its schema
//! changed (a fingerprint of the catalog: relations, columns, functions,
//! indexes, constraints, policies, triggers and privileges outside the
//! system schemas). A run goes ahead when any of its conditions holds, or
//! when there is nothing to compare with yet; every decision is recorded
//! with the figures it was made on.

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::engine::error::{Error, Result};
use crate::engine::pg::connect;

/// One condition of `--when`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Condition {
    /// Rows were written since the last successful backup.
    Changed,
    /// The size moved (either way) by at least this much.
    Size {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        percent: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
    },
    /// The schema fingerprint differs.
    Schema,
}

// `parse` admits no NaN percentage, so equality is total.
impl Eq for Condition {}

impl Condition {
    /// `changed`, `schema`, `size:+10%`, `size:50MB` (`+` is optional:
    /// growth and shrinkage both count).
    pub fn parse(text: &str) -> Result<Condition> {
        let t = text.trim().to_ascii_lowercase();
        let bad = || {
            Error::invalid(format!("unknown condition '{}'", text.trim())).with_hint(
                "use changed, schema, size:+10% or size:+50MB (several separated by commas)",
            )
        };
        match t.as_str() {
            "changed" | "unchanged" => return Ok(Condition::Changed),
            "schema" => return Ok(Condition::Schema),
            _ => {}
        }
        let Some(amount) = t.strip_prefix("size:") else {
            return Err(bad());
        };
        let amount = amount.trim().trim_start_matches(['+', '±']).trim();
        if let Some(p) = amount.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 10_000.0) {
                return Err(Error::invalid(
                    "a size condition's percentage must be above 0 and at most 10000",
                ));
            }
            return Ok(Condition::Size {
                percent: Some(p),
                bytes: None,
            });
        }
        let split = amount
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(amount.len());
        let (num, unit) = amount.split_at(split);
        let num: f64 = num.parse().map_err(|_| bad())?;
        let mult: f64 = match unit.trim() {
            "" | "b" => 1.0,
            "kb" | "k" | "kib" => 1024.0,
            "mb" | "m" | "mib" => 1024.0 * 1024.0,
            "gb" | "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
            _ => return Err(bad()),
        };
        let bytes = (num * mult).round();
        if bytes < 1.0 {
            return Err(Error::invalid("a size condition needs an amount above 0"));
        }
        Ok(Condition::Size {
            percent: None,
            bytes: Some(bytes as u64),
        })
    }

    /// A comma-separated list (`--when changed,schema`).
    pub fn parse_list(text: &str) -> Result<Vec<Condition>> {
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Condition::parse)
            .collect()
    }

    /// How the form, the CLI and the job list write it.
    pub fn describe(&self) -> String {
        match self {
            Condition::Changed => "rows were written".into(),
            Condition::Schema => "the schema changed".into(),
            Condition::Size { percent, bytes } => {
                let mut parts = Vec::new();
                if let Some(p) = percent {
                    parts.push(format!("{p}%"));
                }
                if let Some(b) = bytes {
                    parts.push(crate::engine::units::bytes(*b as i64));
                }
                format!("the size changed by {}", parts.join(" or "))
            }
        }
    }
}

/// What a database looked like at a successful backup (kept per job and
/// project) or looks like now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeState {
    /// Rows inserted + updated + deleted, as `pg_stat_database` counts.
    pub writes: i64,
    pub size: i64,
    /// The schema fingerprint (absent in states kept before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

/// A run-or-skip decision and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub run: bool,
    pub reason: String,
}

/// Whether a job with `conditions` runs, given the state at its last
/// successful backup and now (pure).
pub fn decide(conditions: &[Condition], last: Option<&ChangeState>, now: &ChangeState) -> Decision {
    if conditions.is_empty() {
        return Decision {
            run: true,
            reason: "no condition".into(),
        };
    }
    let Some(last) = last else {
        return Decision {
            run: true,
            reason: "no earlier successful backup to compare with".into(),
        };
    };
    let mut unmet = Vec::new();
    for c in conditions {
        match c {
            Condition::Changed => {
                // A counter that went back (statistics reset, a restarted
                // server) tells nothing: count it as a change.
                if now.writes != last.writes {
                    let n = now.writes - last.writes;
                    return Decision {
                        run: true,
                        reason: if n > 0 {
                            format!("{n} row writes since the last successful backup")
                        } else {
                            "the server's write counters were reset".into()
                        },
                    };
                }
                unmet.push("no row writes".to_owned());
            }
            Condition::Size { percent, bytes } => {
                let delta = (now.size - last.size).unsigned_abs();
                let pct = if last.size > 0 {
                    delta as f64 * 100.0 / last.size as f64
                } else {
                    f64::INFINITY
                };
                let by_pct = percent.is_some_and(|p| pct >= p);
                let by_bytes = bytes.is_some_and(|b| delta >= b);
                let moved = format!(
                    "the size moved by {} ({:.1}%)",
                    crate::engine::units::bytes(delta as i64),
                    if pct.is_finite() { pct } else { 100.0 }
                );
                if by_pct || by_bytes {
                    return Decision {
                        run: true,
                        reason: moved,
                    };
                }
                unmet.push(format!(
                    "{moved}, less than {}",
                    c.describe().replace("the size changed by ", "")
                ));
            }
            Condition::Schema => match (&last.schema, &now.schema) {
                (Some(a), Some(b)) if a == b => unmet.push("the schema is unchanged".to_owned()),
                (None, _) => {
                    return Decision {
                        run: true,
                        reason: "no schema fingerprint from the last backup to compare with".into(),
                    };
                }
                _ => {
                    return Decision {
                        run: true,
                        reason: "the schema changed".into(),
                    };
                }
            },
        }
    }
    Decision {
        run: false,
        reason: format!(
            "unchanged since the last successful backup: {}",
            unmet.join("; ")
        ),
    }
}

/// One fingerprint of everything a schema-only dump would hold that users
/// change: fully qualified names (`search_path` is emptied), system
/// schemas left out.
const FINGERPRINT: &str = "SET search_path = '';
WITH ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema')
      AND nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%'
)
SELECT md5(coalesce(string_agg(item, E'\\n' ORDER BY item), '')) FROM (
    SELECT format('n %s %s', nspname, n.nspacl) AS item
      FROM pg_namespace n WHERE n.oid IN (SELECT oid FROM ns)
    UNION ALL
    SELECT format('r %s %s %s %s %s %s', c.oid::regclass, c.relkind, c.relrowsecurity,
                  c.relforcerowsecurity, c.relacl,
                  CASE WHEN c.relkind IN ('v', 'm') THEN md5(pg_get_viewdef(c.oid)) END)
      FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns)
       AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    UNION ALL
    SELECT format('a %s %s %s %s %s %s', a.attrelid::regclass, a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid), a.attacl)
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relnamespace IN (SELECT oid FROM ns) AND a.attnum > 0 AND NOT a.attisdropped
       AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    UNION ALL
    SELECT format('f %s %s %s', p.oid::regprocedure, md5(pg_get_functiondef(p.oid)), p.proacl)
      FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ns) AND p.prokind IN ('f', 'p')
    UNION ALL
    SELECT format('i %s', pg_get_indexdef(i.indexrelid))
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
     WHERE c.relnamespace IN (SELECT oid FROM ns)
    UNION ALL
    SELECT format('k %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
      FROM pg_constraint WHERE connamespace IN (SELECT oid FROM ns) AND conrelid <> 0
    UNION ALL
    SELECT format('p %s %s %s %s %s %s %s', polrelid::regclass, polname, polcmd, polpermissive,
                  pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid), polroles)
      FROM pg_policy
    UNION ALL
    SELECT format('t %s %s', pg_get_triggerdef(t.oid), t.tgenabled)
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE NOT t.tgisinternal AND c.relnamespace IN (SELECT oid FROM ns)
    UNION ALL
    SELECT format('e %s %s', extname, extversion) FROM pg_extension
) items";

impl Engine {
    /// The change counters, size and schema fingerprint of a project's
    /// database now.
    pub async fn change_state(&self, project_id: &str) -> Result<ChangeState> {
        let p = self.project(project_id).await?;
        let info = self.connection_info(&p).await?;
        let client = connect::connect(&info, None).await?;
        let row = client
            .query_one(
                "SELECT (COALESCE(tup_inserted, 0) + COALESCE(tup_updated, 0) + COALESCE(tup_deleted, 0))::int8,
                        pg_database_size(current_database())
                 FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await
            .map_err(|e| Error::connection(format!("could not read change counters: {e}")))?;
        let schema = client
            .simple_query(FINGERPRINT)
            .await
            .map_err(|e| {
                let why = e
                    .as_db_error()
                    .map(|d| d.message().to_owned())
                    .unwrap_or_else(|| e.to_string());
                Error::connection(format!("could not fingerprint the schema: {why}"))
            })?
            .into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            });
        Ok(ChangeState {
            writes: row.get(0),
            size: row.get(1),
            schema,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(writes: i64, size: i64, schema: &str) -> ChangeState {
        ChangeState {
            writes,
            size,
            schema: Some(schema.into()),
        }
    }

    #[test]
    fn conditions_parse_and_refuse_nonsense() {
        assert_eq!(Condition::parse("changed").expect("c"), Condition::Changed);
        assert_eq!(Condition::parse(" Schema ").expect("s"), Condition::Schema);
        assert_eq!(
            Condition::parse("size:+10%").expect("p"),
            Condition::Size {
                percent: Some(10.0),
                bytes: None
            }
        );
        assert_eq!(
            Condition::parse("size:50MB").expect("b"),
            Condition::Size {
                percent: None,
                bytes: Some(50 * 1024 * 1024)
            }
        );
        assert_eq!(
            Condition::parse_list("changed, schema")
                .expect("list")
                .len(),
            2
        );
        for bad in [
            "sized",
            "size:",
            "size:-",
            "size:0%",
            "size:10 parsecs",
            "size:0MB",
        ] {
            assert!(Condition::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn each_condition_skips_and_runs_as_documented() {
        let last = state(100, 1000, "a");
        let changed = [Condition::Changed];
        assert!(!decide(&changed, Some(&last), &state(100, 1010, "a")).run);
        assert!(decide(&changed, Some(&last), &state(101, 1000, "a")).run);
        let reset = decide(&changed, Some(&last), &state(3, 1000, "a"));
        assert!(reset.run && reset.reason.contains("reset"), "{reset:?}");

        let pct = [Condition::Size {
            percent: Some(10.0),
            bytes: None,
        }];
        assert!(!decide(&pct, Some(&last), &state(500, 1099, "b")).run);
        assert!(decide(&pct, Some(&last), &state(100, 1100, "a")).run);
        assert!(
            decide(&pct, Some(&last), &state(100, 850, "a")).run,
            "shrinking counts"
        );
        let bytes = [Condition::Size {
            percent: None,
            bytes: Some(500),
        }];
        assert!(!decide(&bytes, Some(&last), &state(100, 1499, "a")).run);
        assert!(decide(&bytes, Some(&last), &state(100, 1500, "a")).run);

        let schema = [Condition::Schema];
        assert!(!decide(&schema, Some(&last), &state(900, 9000, "a")).run);
        assert!(decide(&schema, Some(&last), &state(100, 1000, "b")).run);
        let old = ChangeState {
            schema: None,
            ..last.clone()
        };
        assert!(
            decide(&schema, Some(&old), &state(100, 1000, "a")).run,
            "nothing to compare"
        );

        // Any condition that holds runs it; none holding skips, saying why.
        let both = [Condition::Changed, Condition::Schema];
        assert!(decide(&both, Some(&last), &state(100, 1000, "b")).run);
        let skip = decide(&both, Some(&last), &state(100, 1000, "a"));
        assert!(!skip.run);
        assert!(
            skip.reason.contains("no row writes") && skip.reason.contains("schema is unchanged"),
            "{skip:?}"
        );
        assert!(decide(&both, None, &state(100, 1000, "a")).run, "first run");
        assert!(decide(&[], Some(&last), &last).run);
    }
}
