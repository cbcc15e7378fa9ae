#!/usr/bin/env bash
# Runs every test of supabackup.  The one command for a fresh Debian machine
# that only has the Rust toolchain:
#
#   scripts/test.sh [extra args for `cargo test`]
#
# 1. Checks the system packages the tests need (PostgreSQL server + client,
#    openssl, xvfb + xauth, zstd, xz-utils, bc, X11 client libraries), and
#    says in one line when the shared fixtures (../shared/fixtures or
#    SUPABACKUP_FIXTURES_DIR) are missing.  Missing
#    ones are installed with apt-get when running as root; otherwise the
#    script prints what to install and exits 1.
# 2. Installs the object-storage test servers (moto, Azurite) when missing.
# 3. Runs `cargo test --all-targets` (debug profile) and, on a full run
#    (no extra args), the doc tests.
#
# Environment:
#   SUPABACKUP_NO_INSTALL=1    never install packages, only report what is missing
#   SUPABACKUP_SKIP_DOCTESTS=1 skip `cargo test --doc`
# Flags:
#   --deps-only                only check/install the system packages
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$SECONDS
trap 'rc=$?; if [ "$rc" -ne 0 ]; then echo "==> scripts/test.sh: FAILED (exit $rc) after $((SECONDS - started))s" >&2; fi' EXIT

deps_only=0
if [ "${1:-}" = "--deps-only" ]; then
    deps_only=1
    shift
fi

APT_PACKAGES=(postgresql postgresql-client openssl xvfb xauth zstd xz-utils bc jq desktop-file-utils
    libxkbcommon-x11-0 libx11-xcb1 libxcursor1 libxi6)

# --- what is missing? ---------------------------------------------------------
missing=()   # human-readable descriptions
extra_pkgs=() # packages beyond APT_PACKAGES

# PostgreSQL: a directory with initdb, pg_ctl, psql and pg_dump, either
# /usr/lib/postgresql/<major>/bin (Debian) or on PATH.
pg_found() {
    local d tool ok
    for d in /usr/lib/postgresql/*/bin; do
        ok=1
        for tool in initdb pg_ctl psql pg_dump; do
            [ -x "$d/$tool" ] || ok=0
        done
        [ "$ok" = 1 ] && return 0
    done
    for tool in initdb pg_ctl psql pg_dump; do
        command -v "$tool" >/dev/null 2>&1 || return 1
    done
    # Debian's psql/pg_dump on PATH are wrappers; make sure they really run.
    psql --version >/dev/null 2>&1 && pg_dump --version >/dev/null 2>&1
}

have() { command -v "$1" >/dev/null 2>&1; }

# A shared library the GUI tests load at run time.
have_lib() {
    if have ldconfig || [ -x /sbin/ldconfig ]; then
        { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -q "$1"
    else
        compgen -G "/usr/lib/*/$1*" >/dev/null || compgen -G "/usr/lib/$1*" >/dev/null
    fi
}

pg_found || missing+=("PostgreSQL server + client (initdb, pg_ctl, psql, pg_dump): postgresql postgresql-client")
have openssl || missing+=("openssl")
have Xvfb || missing+=("Xvfb: xvfb")
have xauth || missing+=("xauth")
have zstd || missing+=("zstd")
{ have xz && have unxz; } || missing+=("xz: xz-utils")
have bc || missing+=("bc (make_platform.sh uses it)")
have jq || missing+=("jq (the stock-tools restore recipe test uses it)")
have desktop-file-validate || missing+=("desktop-file-validate (the packaging test checks the desktop entry): desktop-file-utils")
have_lib libxkbcommon-x11.so.0 || missing+=("libxkbcommon-x11-0")
have_lib libX11-xcb.so.1 || missing+=("libx11-xcb1")
have_lib libXcursor.so.1 || missing+=("libxcursor1")
have_lib libXi.so.6 || missing+=("libxi6")
# The harness itself uses these (util-linux / coreutils; always present on Debian).
for tool in runuser setsid tail id; do
    have "$tool" || [ -x "/usr/sbin/$tool" ] || [ -x "/sbin/$tool" ] || missing+=("$tool: util-linux coreutils")
done
if ! have cc; then
    missing+=("C compiler/linker (cc): gcc libc6-dev")
    extra_pkgs+=(gcc libc6-dev)
fi
if ! have cargo; then
    echo "==> cargo not found: install the Rust toolchain (https://rustup.rs) first" >&2
    exit 1
fi

if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> missing system packages for the tests:"
    printf '      - %s\n' "${missing[@]}"
    install_cmd="apt-get install -y --no-install-recommends ${APT_PACKAGES[*]} ${extra_pkgs[*]:-}"
    if [ "$(id -u)" = 0 ] && have apt-get && [ "${SUPABACKUP_NO_INSTALL:-0}" != 1 ]; then
        echo "==> installing them with apt-get"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            "${APT_PACKAGES[@]}" ${extra_pkgs[@]+"${extra_pkgs[@]}"}
        if ! pg_found; then
            echo "==> PostgreSQL binaries still not found after installation" >&2
            exit 1
        fi
    else
        sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo "
        echo "==> please install them, e.g. on Debian/Ubuntu:" >&2
        echo "      ${sudo}apt-get update && ${sudo}${install_cmd% }" >&2
        exit 1
    fi
else
    echo "==> system packages: all present"
fi

# --- object-storage test servers ---------------------------------------------
# The destination tests run moto's S3 server and Azurite (Azure Blob) on
# loopback. Taken from PATH when there, else installed once into
# target/test-tools (a Python venv and an npm prefix) from PyPI and npm.
tools="$PWD/target/test-tools"
export PATH="$tools/venv/bin:$tools/node/node_modules/.bin:$PATH"
MOTO_VERSION=5.2.1
AZURITE_VERSION=3.35.0
need_tool_pkgs=()
if ! have moto_server; then
    { have python3 && python3 -c 'import venv, ensurepip' 2>/dev/null; } || need_tool_pkgs+=(python3 python3-venv)
fi
if ! have azurite-blob; then
    { have node && have npm; } || need_tool_pkgs+=(nodejs npm)
fi
if [ "${#need_tool_pkgs[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && have apt-get && [ "${SUPABACKUP_NO_INSTALL:-0}" != 1 ]; then
        echo "==> installing ${need_tool_pkgs[*]} for the object-storage test servers"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_tool_pkgs[@]}"
    else
        echo "==> please install ${need_tool_pkgs[*]} (the object-storage test servers need them)" >&2
        exit 1
    fi
fi
if ! have moto_server; then
    echo "==> installing moto[server] $MOTO_VERSION (S3 test server) into $tools/venv"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install --quiet "moto[server]==$MOTO_VERSION"
fi
if ! have azurite-blob; then
    echo "==> installing azurite $AZURITE_VERSION (Azure Blob test server) into $tools/node"
    mkdir -p "$tools/node"
    npm install --silent --no-audit --no-fund --prefix "$tools/node" "azurite@$AZURITE_VERSION"
fi
have moto_server || { echo "==> moto_server still not found" >&2; exit 1; }
have azurite-blob || { echo "==> azurite-blob still not found" >&2; exit 1; }
echo "==> object-storage test servers: moto_server, azurite-blob"

if [ "$deps_only" = 1 ]; then
    echo "==> scripts/test.sh --deps-only: system packages ready"
    exit 0
fi

# --- fixtures ---------------------------------------------------------------------
fixtures=${SUPABACKUP_FIXTURES_DIR:-../shared/fixtures}
if [ ! -f "$fixtures/supabase_like.sql" ] || [ ! -f "$fixtures/supabase_platform/make_platform.sh" ]; then
    echo "==> test fixtures not found in $fixtures (set SUPABACKUP_FIXTURES_DIR): the restore tests will fail"
fi

# --- tests ----------------------------------------------------------------------
echo "==> cargo test --all-targets $*"
cargo test --all-targets "$@"

if [ "$#" -eq 0 ] && [ "${SUPABACKUP_SKIP_DOCTESTS:-0}" != 1 ]; then
    echo "==> cargo test --doc"
    cargo test --doc
fi

echo "==> scripts/test.sh: all tests passed in $((SECONDS - started))s"
