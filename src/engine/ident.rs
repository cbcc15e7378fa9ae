//! Schema and table names as users write them: identifiers, never
//! patterns. A name is taken exactly as typed (case-sensitive, as
//! PostgreSQL stores it); double quotes may enclose a part holding a dot or
//! a quote (`"My.Schema"."Tab le"`, `""` for a quote inside), and a table is
//! split on its one unquoted dot. pg_dump receives each name as a pattern
//! that matches only that name.

use crate::engine::error::{Error, Result};

/// Splits `text` on unquoted dots into unquoted parts.
fn parts(text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted_part = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if cur.is_empty() && !quoted_part => {
                quoted_part = true;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            cur.push('"');
                        }
                        Some('"') => break,
                        Some(c) => cur.push(c),
                        None => {
                            return Err(Error::invalid(format!(
                                "'{text}' has an unclosed double quote"
                            )));
                        }
                    }
                }
                if !matches!(chars.peek(), None | Some('.')) {
                    return Err(Error::invalid(format!(
                        "'{text}': a quoted name must be followed by a dot or end"
                    )));
                }
            }
            '.' => {
                out.push(std::mem::take(&mut cur));
                quoted_part = false;
            }
            c => {
                if quoted_part {
                    return Err(Error::invalid(format!(
                        "'{text}': a quoted name must be followed by a dot or end"
                    )));
                }
                cur.push(c);
            }
        }
    }
    out.push(cur);
    for p in &out {
        if p.is_empty() {
            return Err(Error::invalid(format!("'{text}' has an empty name")));
        }
        if p.chars().any(char::is_control) || p.len() > 63 {
            return Err(Error::invalid(format!(
                "'{text}': a PostgreSQL name is at most 63 bytes, without control characters"
            )));
        }
    }
    Ok(out)
}

/// Splits a list of names on commas and new lines outside double quotes.
pub fn split_list(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' | '\n' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A schema name.
pub fn parse_schema(text: &str) -> Result<String> {
    let text = text.trim();
    let p = parts(text)?;
    if p.len() != 1 {
        return Err(Error::invalid(format!(
            "'{text}' is not one schema name (quote a name holding a dot: \"a.b\")"
        )));
    }
    Ok(p.into_iter().next().unwrap_or_default())
}

/// A table as `schema.table`.
pub fn parse_table(text: &str) -> Result<(String, String)> {
    let text = text.trim();
    let p = parts(text)?;
    match <[String; 2]>::try_from(p) {
        Ok([s, t]) => Ok((s, t)),
        Err(_) => Err(Error::invalid(format!(
            "table '{text}' must be written schema.table (quote a name holding a dot: \"a.b\".\"t\")"
        ))),
    }
}

/// A name written so that [`parse_schema`] reads it back: quoted when it
/// holds a dot or a quote or starts or ends with white space.
pub fn render(name: &str) -> String {
    if name.contains('.') || name.contains('"') || name.trim() != name || name.is_empty() {
        format!("\"{}\"", name.replace('"', "\"\""))
    } else {
        name.to_owned()
    }
}

/// `schema.table`, readable back by [`parse_table`].
pub fn render_table(schema: &str, table: &str) -> String {
    format!("{}.{}", render(schema), render(table))
}

/// A pg_dump pattern matching exactly this name: inside double quotes
/// every character is literal (`*`, `?`, `|`, `.`, upper case).
pub fn pattern(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A pg_dump pattern matching exactly this table.
pub fn table_pattern(schema: &str, table: &str) -> String {
    format!("{}.{}", pattern(schema), pattern(table))
}

/// Edit distance, for suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Names among `known` close to `wanted` (another case, a typo, a part).
pub fn close_matches<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let w = wanted.to_lowercase();
    let mut scored: Vec<(usize, &str)> = known
        .into_iter()
        .filter_map(|k| {
            let l = k.to_lowercase();
            let d = distance(&w, &l);
            (l == w || d <= 2 || (w.len() >= 3 && (l.contains(&w) || w.contains(&l))))
                .then_some((d, k))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, k)| render(k)).collect()
}

/// An error for a name the database does not have, with close matches.
pub fn unknown(what: &str, wanted: &str, close: Vec<String>) -> Error {
    let e = Error::invalid(format!("the source has no {what} {wanted}"));
    if close.is_empty() {
        e.with_hint("names are matched exactly, as PostgreSQL stores them (case included)")
    } else {
        e.with_hint(format!(
            "did you mean {}? Names are matched exactly, case included",
            close.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_exactly_and_quotes_honoured() {
        assert_eq!(parse_schema("MyApp").expect("plain"), "MyApp");
        assert_eq!(parse_schema("zz|public").expect("bar"), "zz|public");
        assert_eq!(parse_schema("\"a.b\"").expect("dot"), "a.b");
        assert_eq!(parse_schema("Ünïcødé").expect("unicode"), "Ünïcødé");
        assert_eq!(parse_schema("\"it\"\"s x\"").expect("quote"), "it\"s x");
        assert!(parse_schema("a.b").is_err(), "an unquoted dot splits");
        assert_eq!(
            parse_table("\"My.Schema\".\"Tab le\"").expect("both"),
            ("My.Schema".to_string(), "Tab le".to_string())
        );
        assert_eq!(
            parse_table("public.orders").expect("plain"),
            ("public".to_string(), "orders".to_string())
        );
        assert_eq!(
            parse_table("\"a.b\".t").expect("mixed"),
            ("a.b".to_string(), "t".to_string())
        );
        for bad in ["", "a.", ".t", "a.b.c", "\"open", "\"a\"b", "x\u{1}"] {
            assert!(parse_table(bad).is_err(), "{bad:?}");
        }
        for name in [
            "MyApp",
            "zz|public",
            "a.b",
            "Ünïcødé",
            "it's x",
            "q\"uote",
            " pad",
        ] {
            assert_eq!(parse_schema(&render(name)).expect("round trip"), name);
            assert_eq!(
                parse_table(&render_table(name, name)).expect("round trip"),
                (name.to_string(), name.to_string())
            );
        }
    }

    #[test]
    fn lists_split_outside_quotes() {
        assert_eq!(
            split_list(" public, \"a,b\" ,,\n\"x\"\"y, z\".t"),
            ["public", "\"a,b\"", "\"x\"\"y, z\".t"]
        );
    }

    #[test]
    fn patterns_match_only_the_name() {
        assert_eq!(pattern("zz|public"), "\"zz|public\"");
        assert_eq!(pattern("q\"uote"), "\"q\"\"uote\"");
        assert_eq!(table_pattern("a.b", "T*"), "\"a.b\".\"T*\"");
    }

    #[test]
    fn suggestions() {
        let known = ["MyApp", "public", "billing", "zz|public"];
        assert_eq!(close_matches("myapp", known), ["MyApp"]);
        assert_eq!(close_matches("biling", known), ["billing"]);
        assert!(close_matches("xyz", known).is_empty());
    }
}
