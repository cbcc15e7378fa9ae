//! Projects: the Supabase databases supabackup looks after. Validation
//! follows the product's schema: name 1–100 characters, ref `^[a-z0-9-]+$`,
//! a PostgreSQL URL, an environment, an optional organization UUID.

use serde::{Deserialize, Serialize};

use crate::engine::conninfo::ConnInfo;
use crate::engine::crypto::Secret;
use crate::engine::error::{Error, Result};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Development,
    Staging,
    Production,
}

impl Environment {
    pub const ALL: [Environment; 3] = [
        Environment::Production,
        Environment::Staging,
        Environment::Development,
    ];

    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Environment::Development),
            "staging" | "stage" => Ok(Environment::Staging),
            "production" | "prod" => Ok(Environment::Production),
            other => Err(Error::invalid(format!(
                "unknown environment '{other}': use development, staging or production"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A project as stored in the catalog. `db_url` never holds a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub project_ref: String,
    pub db_url: String,
    pub environment: Environment,
    pub organization_id: Option<String>,
    pub description: Option<String>,
    pub has_db_password: bool,
    /// The server's CA certificate (PEM): connections verify the server.
    #[serde(default)]
    pub ca_cert: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Project {
    /// Whether connections verify the server's certificate, and how that
    /// reads ("TLS verified …", "encrypted, server NOT verified").
    pub fn tls_verification(&self) -> (bool, &'static str) {
        let Ok(mut info) = ConnInfo::parse(&self.db_url) else {
            return (false, "unknown (the URL does not parse)");
        };
        if info.is_unix_socket() {
            return (true, "local socket (no network)");
        }
        if self.ca_cert.is_some() {
            crate::engine::pg::tls::use_project_ca(&mut info, "project CA".into());
        }
        (
            crate::engine::pg::tls::is_verified(&info),
            crate::engine::pg::tls::describe_verification(&info),
        )
    }

    /// The connection URL for display: `****` where a password is stored.
    pub fn display_url(&self) -> String {
        match (self.has_db_password, ConnInfo::parse(&self.db_url)) {
            (true, Ok(mut info)) => {
                info.password = Some(Secret::new("x"));
                info.redacted()
            }
            _ => self.db_url.clone(),
        }
    }
}

/// What a person types to add or edit a project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectInput {
    pub name: String,
    pub project_ref: String,
    /// A PostgreSQL URL, with or without the password.
    pub db_url: String,
    /// The database password when it is not in the URL.
    pub db_password: Option<Secret>,
    pub environment: String,
    pub organization_id: Option<String>,
    pub description: Option<String>,
    pub access_token: Option<Secret>,
    pub service_role_key: Option<Secret>,
    /// The server's CA certificate, PEM text (Supabase: Database Settings →
    /// SSL Configuration → Download certificate).
    pub ca_cert: Option<String>,
}

/// One problem with one field, for inline messages in the GUI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// Validated input, ready to store.
#[derive(Debug, Clone)]
pub struct ValidProject {
    pub name: String,
    pub project_ref: String,
    /// Parsed URL; its password (from the URL or the separate field) is here.
    pub conn: ConnInfo,
    pub environment: Environment,
    pub organization_id: Option<String>,
    pub description: Option<String>,
    pub access_token: Option<Secret>,
    pub service_role_key: Option<Secret>,
    pub ca_cert: Option<String>,
}

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_REF_LEN: usize = 64;

pub fn validate_name(name: &str) -> std::result::Result<String, String> {
    let name = name.trim();
    let len = name.chars().count();
    if len == 0 {
        return Err("a name is required".into());
    }
    if len > MAX_NAME_LEN {
        return Err(format!(
            "the name has {len} characters; at most {MAX_NAME_LEN} are allowed"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("the name must not contain control characters".into());
    }
    Ok(name.to_owned())
}

pub fn validate_ref(r: &str) -> std::result::Result<String, String> {
    let r = r.trim();
    if r.is_empty() {
        return Err(
            "a project ref is required (Supabase dashboard → Project Settings → General)".into(),
        );
    }
    if r.len() > MAX_REF_LEN {
        return Err(format!(
            "the project ref is longer than {MAX_REF_LEN} characters"
        ));
    }
    if let Some(bad) = r
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "the project ref may contain only lower-case letters, digits and '-' (found '{bad}')"
        ));
    }
    Ok(r.to_owned())
}

pub fn validate_org_id(s: &str) -> std::result::Result<Option<String>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(u) = uuid::Uuid::parse_str(s) {
        return Ok(Some(u.hyphenated().to_string()));
    }
    // Supabase's organization ids are slugs (the Management API's
    // `organization_id`); older ones are UUIDs.
    if s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Ok(Some(s.to_owned()));
    }
    Err(format!(
        "the organization id must be the organization's slug (lower-case letters, digits, '-', '_') or a UUID (got '{s}')"
    ))
}

/// Checks that `pem` holds at least one X.509 certificate and nothing a
/// TLS client could not use as a root.
pub fn validate_ca_cert(pem: &str) -> std::result::Result<(), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    if pem.len() > 1024 * 1024 {
        return Err("the CA certificate file is larger than 1 MiB".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("the CA certificate is not valid PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the CA certificate cannot be used: {e}"))?;
    }
    if roots.is_empty() {
        return Err(
            "no certificate found: expected a PEM file with -----BEGIN CERTIFICATE-----".into(),
        );
    }
    Ok(())
}

/// Reads a CA certificate file (PEM) for a project, checking it.
pub fn read_ca_file(path: &std::path::Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("read", path, e))?;
    if meta.len() > 1024 * 1024 {
        return Err(Error::invalid(format!(
            "{} is larger than 1 MiB: not a CA certificate",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::invalid(format!("{} is not a PEM text file", path.display()))
            .with_hint("Supabase's certificate (prod-ca-2021.crt) is PEM; convert a DER file with `openssl x509 -inform der -in FILE -out FILE.pem`")
    })?;
    validate_ca_cert(&text).map_err(|m| Error::invalid(format!("{}: {m}", path.display())))?;
    Ok(text)
}

/// Checks every field and reports every problem at once.
pub fn validate(input: &ProjectInput) -> std::result::Result<ValidProject, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut push =
        |field: &'static str, message: String| errors.push(FieldError { field, message });

    let name = validate_name(&input.name).map_err(|m| push("name", m)).ok();
    let project_ref = validate_ref(&input.project_ref)
        .map_err(|m| push("project_ref", m))
        .ok();
    let conn = if input.db_url.trim().is_empty() {
        push("db_url", "a connection URL is required".into());
        None
    } else {
        match ConnInfo::parse(&input.db_url) {
            Ok(mut c) => {
                if let Some(p) = &input.db_password {
                    if c.password.is_some() && c.password.as_ref() != Some(p) {
                        push(
                            "db_password",
                            "the URL already holds a different password".into(),
                        );
                    }
                    if !p.is_empty() {
                        c.password = Some(p.clone());
                    }
                }
                Some(c)
            }
            Err(e) => {
                let msg = match e.hint {
                    Some(h) => format!("{} ({h})", e.message),
                    None => e.message,
                };
                push("db_url", msg);
                None
            }
        }
    };
    let environment = if input.environment.trim().is_empty() {
        Some(Environment::default())
    } else {
        Environment::parse(&input.environment)
            .map_err(|e| push("environment", e.message))
            .ok()
    };
    let organization_id = match validate_org_id(input.organization_id.as_deref().unwrap_or("")) {
        Ok(v) => v,
        Err(m) => {
            push("organization_id", m);
            None
        }
    };
    let description = input
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    if let Some(d) = &description
        && d.chars().count() > 1000
    {
        push(
            "description",
            "the description is longer than 1000 characters".into(),
        );
    }
    let ca_cert = match input.ca_cert.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(pem) => match validate_ca_cert(pem) {
            Ok(()) => Some(format!("{pem}\n")),
            Err(m) => {
                push("ca_cert", m);
                None
            }
        },
    };
    match (name, project_ref, conn, environment) {
        (Some(name), Some(project_ref), Some(conn), Some(environment)) if errors.is_empty() => {
            Ok(ValidProject {
                name,
                project_ref,
                conn,
                environment,
                organization_id,
                description,
                access_token: input.access_token.clone().filter(|s| !s.is_empty()),
                service_role_key: input.service_role_key.clone().filter(|s| !s.is_empty()),
                ca_cert,
            })
        }
        _ => Err(errors),
    }
}

/// Turns field errors into one engine error (one sentence per field).
pub fn field_errors_to_error(errors: &[FieldError]) -> Error {
    let text: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    Error::invalid(format!("invalid project: {}", text.join("; ")))
}

/// A folder-safe, lower-case form of a name ("My App (prod)" → "my-app-prod").
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_end_matches('-').chars().take(48).collect();
    let trimmed = trimmed.trim_end_matches('-').to_owned();
    if trimmed.is_empty() {
        "project".into()
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> ProjectInput {
        ProjectInput {
            name: "Shop".into(),
            project_ref: "abcdefghijklmnopqrst".into(),
            db_url: "postgresql://postgres:pw@db.abcdefghijklmnopqrst.supabase.co:5432/postgres"
                .into(),
            environment: "production".into(),
            organization_id: Some("7f1b6a3e-1d2c-4b5a-9e8f-0a1b2c3d4e5f".into()),
            ..Default::default()
        }
    }

    fn field_of(input: &ProjectInput) -> Vec<&'static str> {
        validate(input)
            .expect_err("invalid")
            .iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn accepts_good_input() {
        let v = validate(&good()).expect("valid");
        assert_eq!(v.environment, Environment::Production);
        assert_eq!(v.conn.password.as_ref().map(|p| p.expose()), Some("pw"));
    }

    #[test]
    fn each_rule_rejects_bad_input() {
        let mut i = good();
        i.name = "   ".into();
        assert_eq!(field_of(&i), ["name"]);
        i.name = "x".repeat(101);
        assert_eq!(field_of(&i), ["name"]);
        i.name = "x".repeat(100);
        assert!(validate(&i).is_ok(), "100 characters are allowed");

        let mut i = good();
        for bad in ["", "ABC", "a_b", "a b", "ref!"] {
            i.project_ref = bad.into();
            assert_eq!(field_of(&i), ["project_ref"], "{bad:?}");
        }
        i.project_ref = "a-1-b".into();
        assert!(validate(&i).is_ok());

        let mut i = good();
        for bad in [
            "",
            "https://example.com",
            "postgresql://nouser.example.com/db",
        ] {
            i.db_url = bad.into();
            assert_eq!(field_of(&i), ["db_url"], "{bad:?}");
        }

        let mut i = good();
        i.environment = "qa".into();
        assert_eq!(field_of(&i), ["environment"]);
        i.environment = String::new();
        assert_eq!(
            validate(&i).expect("default env").environment,
            Environment::Development
        );

        let mut i = good();
        i.organization_id = Some("Not a slug!".into());
        assert_eq!(field_of(&i), ["organization_id"]);
        i.organization_id = Some("acme-org_2".into());
        assert_eq!(
            validate(&i).expect("slug ok").organization_id.as_deref(),
            Some("acme-org_2")
        );
        i.organization_id = Some(String::new());
        assert!(
            validate(&i)
                .expect("empty org ok")
                .organization_id
                .is_none()
        );
    }

    #[test]
    fn reports_all_problems_at_once() {
        let i = ProjectInput {
            name: String::new(),
            project_ref: "BAD".into(),
            db_url: "nope".into(),
            environment: "x".into(),
            organization_id: Some("Y?".into()),
            ..Default::default()
        };
        assert_eq!(
            field_of(&i),
            [
                "name",
                "project_ref",
                "db_url",
                "environment",
                "organization_id"
            ]
        );
    }

    #[test]
    fn separate_password_field() {
        let mut i = good();
        i.db_url = "postgresql://postgres@h/postgres".into();
        i.db_password = Some(Secret::new("sep"));
        assert_eq!(
            validate(&i)
                .expect("ok")
                .conn
                .password
                .as_ref()
                .map(|p| p.expose()),
            Some("sep")
        );
        i.db_url = "postgresql://postgres:other@h/postgres".into();
        assert_eq!(field_of(&i), ["db_password"]);
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("My App (prod)"), "my-app-prod");
        assert_eq!(slugify("  ---"), "project");
        assert_eq!(slugify("Ünïcode shop"), "n-code-shop");
    }
}
