//! What `scripts/package.sh` puts into the .deb and the tarball, checked
//! without a release build: the completions and man pages the binary
//! generates, the desktop entry (desktop-file-validate), the systemd user
//! unit (systemd-analyze verify), and the package metadata naming them.

use std::path::Path;
use std::process::Command;

use crate::support::engine::{stderr, stdout};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_supabackup"))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn completions_for_each_shell_know_the_commands() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef supabackup"),
        ("fish", "complete -c supabackup"),
    ] {
        let out = bin().args(["completions", shell]).output().expect("run");
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains(marker), "{shell}: no {marker:?}");
        for word in ["restore", "backup", "project", "health", "scratch-server"] {
            assert!(text.contains(word), "{shell} completion lacks {word}");
        }
    }
    if have("bash") {
        let out = bin().args(["completions", "bash"]).output().expect("run");
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("c.bash");
        std::fs::write(&f, &out.stdout).expect("write");
        let check = Command::new("bash")
            .arg("-n")
            .arg(&f)
            .output()
            .expect("bash");
        assert!(check.status.success(), "{}", stderr(&check));
    }
    let out = bin().args(["completions", "tcsh"]).output().expect("run");
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn man_pages_are_written_for_the_command_and_its_subcommands() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = bin().arg("manpages").arg(dir.path()).output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let main = std::fs::read_to_string(dir.path().join("supabackup.1")).expect("supabackup.1");
    assert!(
        main.contains(".TH supabackup 1"),
        "{}",
        &main[..200.min(main.len())]
    );
    assert!(
        main.contains("Exit codes"),
        "the long help's exit codes are in it"
    );
    for page in [
        "supabackup-backup-run.1",
        "supabackup-restore.1",
        "supabackup-daemon.1",
        "supabackup-project-health.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page} is roff"
        );
    }
    assert!(
        !dir.path().join("supabackup-manpages.1").exists(),
        "hidden commands get no page"
    );
    let pages: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !pages.iter().any(|p| p.contains("-help")),
        "clap's help subcommands get no page: {pages:?}"
    );
    assert!(pages.len() > 40, "a page per subcommand: {}", pages.len());
    if have("man") {
        let render = Command::new("man")
            .arg("-l")
            .arg(dir.path().join("supabackup.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .expect("man");
        assert!(render.status.success(), "{}", stderr(&render));
    }
}

#[test]
fn the_desktop_entry_validates() {
    let path = root().join("assets/package/supabackup.desktop");
    let text = std::fs::read_to_string(&path).expect("desktop entry");
    for line in [
        "[Desktop Entry]",
        "Type=Application",
        "Exec=supabackup",
        "Icon=supabackup",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line}");
    }
    assert!(
        root().join("assets/package/supabackup.svg").is_file(),
        "the icon it names"
    );
    assert!(
        have("desktop-file-validate"),
        "desktop-file-validate is missing: scripts/test.sh installs desktop-file-utils"
    );
    let out = Command::new("desktop-file-validate")
        .arg(&path)
        .output()
        .expect("validate");
    assert!(
        out.status.success() && stdout(&out).trim().is_empty(),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn the_systemd_user_unit_parses_and_runs_a_real_command() {
    let path = root().join("assets/package/supabackup.service");
    let text = std::fs::read_to_string(&path).expect("unit");
    let mut section = String::new();
    let mut exec = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_owned();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line}"));
        assert!(
            ["Unit", "Service", "Install"].contains(&section.as_str()),
            "{k} outside a known section"
        );
        if section == "Service" && k == "ExecStart" {
            exec = Some(v.to_owned());
        }
    }
    let exec = exec.expect("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(args[0], "/usr/bin/supabackup", "where the .deb installs it");
    // The command it runs is one the binary accepts.
    let out = bin().args(&args[1..]).arg("--help").output().expect("run");
    assert!(out.status.success(), "{exec}: {}", stderr(&out));
    if have("systemd-analyze") {
        let dir = tempfile::tempdir().expect("tmp");
        let copy = dir.path().join("supabackup.service");
        std::fs::write(
            &copy,
            text.replace("/usr/bin/supabackup", env!("CARGO_BIN_EXE_supabackup")),
        )
        .expect("write");
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&copy)
            .env("HOME", dir.path())
            .output()
            .expect("systemd-analyze");
        assert!(
            out.status.success() && stderr(&out).trim().is_empty(),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn the_package_metadata_names_files_that_exist_or_are_generated() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let start = manifest
        .find("[package.metadata.deb]")
        .expect("cargo-deb metadata");
    let deb = &manifest[start..];
    assert!(
        deb.contains("postgresql-client"),
        "pg_dump and psql come with it"
    );
    let generated = [
        "target/release/supabackup",
        "target/package/completions/supabackup.bash",
        "target/package/completions/_supabackup",
        "target/package/completions/supabackup.fish",
        "target/package/man/*.1.gz",
    ];
    let script = std::fs::read_to_string(root().join("scripts/package.sh")).expect("package.sh");
    let mut sources = 0;
    for line in deb.lines().take_while(|l| !l.starts_with("[lib]")) {
        let Some(src) = line
            .trim()
            .strip_prefix("[\"")
            .and_then(|l| l.split('"').next())
        else {
            continue;
        };
        sources += 1;
        if generated.contains(&src) {
            continue;
        }
        if let Some(dir) = src.strip_suffix("/*.md") {
            assert!(root().join(dir).is_dir(), "{src}");
        } else {
            assert!(root().join(src).is_file(), "{src} does not exist");
        }
    }
    assert_eq!(sources, 10, "every asset line was read");
    for made in [
        "completions bash",
        "completions zsh",
        "completions fish",
        "manpages",
    ] {
        assert!(script.contains(made), "package.sh does not run `{made}`");
    }
    let check = Command::new("bash")
        .arg("-n")
        .arg(root().join("scripts/package.sh"))
        .output()
        .expect("bash");
    assert!(check.status.success(), "{}", stderr(&check));
}
