#!/usr/bin/env bash
# Benchmarks a full supabackup backup against plain pg_dump pipelines.
#
#   scripts/bench.sh            # ~20 min on 2 cores, plus the release build (~15 min the first time)
#   BENCH_SKIP_XZ=1 scripts/bench.sh   # ~8 min
#
# What it does, in one run:
#  1. Builds `supabackup` in release mode in a SEPARATE target dir
#     (BENCH_TARGET_DIR, default /work/target-release), under `nice -n 19`.
#  2. Starts a throw-away PostgreSQL cluster (initdb/pg_ctl from the highest
#     /usr/lib/postgresql/*/bin) on a free 127.0.0.1 port, as the `postgres`
#     OS user when run as root: ssl=on with a self-signed certificate,
#     `hostssl` + scram-sha-256 only, fsync=off for speed. Clients get the
#     password through a 0600 PGPASSFILE (never argv). The cluster lives in a
#     temp dir removed by an EXIT trap.
#  3. Fills database `bench`: `pgbench -i -s $BENCH_SCALE` plus a table `docs`
#     of $BENCH_DOC_ROWS realistic rows (word text, md5 tokens, nested jsonb).
#     A small database `bench_small` (scale $BENCH_SMALL_SCALE) too, to show
#     that supabackup's peak memory does not grow with the database.
#  4. Times, back to back (after one untimed warm-up pg_dump), in
#     $BENCH_REPEAT interleaved rounds: raw pg_dump (plain) to a file,
#     pg_dump | zstd -3, pg_dump -Fc, supabackup backup run --type full at its
#     defaults (zstd 3, encrypted, checksummed, 2 data streams), the same with
#     --streams 1, and the defaults on bench_small;
#     then once each (slow): pg_dump | xz -6 and supabackup --compression xz.
#  4b. Uploads a ~1 GB (uncompressed) backup with `backup copy` to a folder
#     destination and to moto's S3 server on loopback, and verifies the S3
#     copy by reading it back (memory must stay flat: <= 100 MB tree RSS).
#  4c. Churns `bench` for BENCH_INCR_DAYS days (1 % updates) and takes an
#     incremental backup each day; compares the repository's growth with the
#     ideal delta (zstd --patch-from of consecutive plain dumps) and with restic
#     fed the same dumps; restores the last snapshot (in one transaction, and
#     with --jobs $BENCH_RESTORE_JOBS) vs psql of the plain dump.
#  4d. Once more over a remote-like network: a userspace TCP proxy adds
#     10 ms of round trip and shares 500 Mbit/s each way (the kernel here has
#     no netem): pg_dump, supabackup (2 streams and 1), psql of the plain
#     dump, supabackup restore in one transaction and with --jobs.
#  5. Prints a table: wall time (median of the rounds), CPU, peak RSS of the
#     whole process tree, output size, time vs raw pg_dump and size vs
#     zstd -3, and the targets (<= 1.1x pg_dump's time with one stream,
#     <= 0.8x with parallel streams, <= zstd -3's size, <= 100 MB for the
#     whole tree; restores <= 1.0x psql, <= 0.7x with --jobs).
#
# Memory is measured two ways (both printed):
#  * a sampler reads /proc every 50 ms, walks the command's process tree
#    (e.g. supabackup + its concurrent pg_dump/pg_dumpall/pg_restore children,
#    or bash + pg_dump + zstd) and sums VmRSS of all of them; the peak of that
#    sum is "tree RSS". (RSS counts shared library pages once per process, so
#    this is an upper bound; the peak PSS sum is printed next to it.)
#  * GNU /usr/bin/time -f '%e %M %P': %M is the max RSS of the single largest
#    process only, not a sum; printed as a cross-check.
#
# Environment:
#   BENCH_SCALE=70             pgbench scale of `bench` (70 ≈ 1 GB with docs)
#   BENCH_DOC_ROWS=200000      rows in bench.docs
#   BENCH_SMALL_SCALE=10       pgbench scale of `bench_small`
#   BENCH_SMALL_DOC_ROWS=      rows in bench_small.docs (default: scaled down)
#   BENCH_REPEAT=3             rounds of the fast measurements (median reported)
#   BENCH_SKIP_XZ=1            skip both xz runs (they are slow: ~10 min here)
#   BENCH_SKIP_SMALL=1         skip the small-database memory run
#   BENCH_SKIP_UPLOAD=1        skip the off-site upload run (moto's S3 server on loopback)
#   BENCH_SKIP_INCR=1          skip the incremental run (days of churn vs the ideal delta and restic)
#   BENCH_INCR_DAYS=7          days of churn in the incremental run
#   BENCH_RESTORE_JOBS=4       connections of the parallel restore (restore run --jobs)
#   BENCH_SKIP_NET=1           skip the remote-like network run (a delaying, rate-limiting proxy)
#   BENCH_NET_DELAY_MS=10      its round-trip delay; BENCH_NET_MBIT=500 its rate each way
#   BENCH_SKIP_WARMUP=1        no untimed warm-up pg_dump
#   BENCH_ZSTD_ARGS="-3"       zstd CLI flags for the reference pipeline
#   BENCH_XZ_ARGS="-6 -T0"     xz CLI flags (-T0: threaded, like supabackup's liblzma)
#   BENCH_TARGET_DIR=/work/target-release   cargo target dir of the release build
#   BENCH_SUPABACKUP_BIN=PATH  use this binary, do not build
#   BENCH_BUILD_RETRIES=3      retries (60 s apart) when the build fails
#   BENCH_PG_BIN=DIR           PostgreSQL bin dir (default: highest /usr/lib/postgresql/*/bin)
#   BENCH_TMPDIR=DIR           where the temp dir goes (default: $TMPDIR or /tmp)
#   BENCH_KEEP=1               keep the temp dir (cluster stopped) for inspection
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

SCALE=${BENCH_SCALE:-70}
DOC_ROWS=${BENCH_DOC_ROWS:-200000}
SMALL_SCALE=${BENCH_SMALL_SCALE:-10}
SMALL_DOC_ROWS=${BENCH_SMALL_DOC_ROWS:-$((DOC_ROWS * SMALL_SCALE / (SCALE > 0 ? SCALE : 1)))}
SKIP_XZ=${BENCH_SKIP_XZ:-0}
SKIP_SMALL=${BENCH_SKIP_SMALL:-0}
SKIP_WARMUP=${BENCH_SKIP_WARMUP:-0}
ZSTD_ARGS=${BENCH_ZSTD_ARGS:--3}
XZ_ARGS=${BENCH_XZ_ARGS:--6 -T0}
TARGET_DIR=${BENCH_TARGET_DIR:-/work/target-release}
BUILD_RETRIES=${BENCH_BUILD_RETRIES:-3}
KEEP=${BENCH_KEEP:-0}
REPEAT=${BENCH_REPEAT:-3}

log() { printf '==> [%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }

for tool in python3 openssl zstd xz; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

# --- PostgreSQL binaries --------------------------------------------------------
if [[ -n ${BENCH_PG_BIN:-} ]]; then
    PGBIN=$BENCH_PG_BIN
else
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
[[ -n $PGBIN && -x $PGBIN/initdb && -x $PGBIN/pg_dump && -x $PGBIN/pgbench ]] ||
    die "no PostgreSQL server found under /usr/lib/postgresql/*/bin (set BENCH_PG_BIN)"

IS_ROOT=0
[[ $(id -u) -eq 0 ]] && IS_ROOT=1
as_pg() {
    if [[ $IS_ROOT -eq 1 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [[ $IS_ROOT -eq 1 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' OS user to run the server"
fi

# --- temp dir + cleanup ---------------------------------------------------------
WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/supabackup-bench.XXXXXX")
chmod 0711 "$WORK" # the postgres user must reach $WORK/pg, nothing else
PGROOT=$WORK/pg
PGDATA=$PGROOT/data
OUT=$WORK/out
RES=$WORK/results
mkdir -p "$PGROOT" "$OUT" "$RES"
chmod 0700 "$OUT" "$RES"
[[ $IS_ROOT -eq 1 ]] && chown postgres: "$PGROOT"
chmod 0700 "$PGROOT"
cd "$WORK"

PG_STARTED=0
cleanup() {
    local rc=$?
    set +e
    if [[ $PG_STARTED -eq 1 ]]; then
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1
    fi
    if [[ $KEEP == 1 ]]; then
        echo "bench.sh: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    [[ $rc -ne 0 ]] && echo "bench.sh: FAILED (exit $rc)" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers (python) -----------------------------------------------------------
# --- helpers (python) -----------------------------------------------------------
cat >"$WORK/measure.py" <<'PY'
"""measure.py OUT.json [--stdout FILE] [--stdin FILE] -- CMD...

Runs CMD under GNU time (when present), samples its process tree every 50 ms
via /proc and writes wall time, CPU, per-process peaks and the peak of the
summed RSS (and PSS, read every 5th sample: it is costlier) of the tree, the
time(1) wrapper itself excluded, as JSON."""
import json, os, resource, subprocess, sys, time

INTERVAL = 0.05
PSS_EVERY = 5

def kb(line):
    return int(line.split()[1])

def children(pid):
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out

def status(pid):
    name, rss, hwm = None, 0, 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Name:"):
                    name = line.split(None, 1)[1].strip()
                elif line.startswith("VmRSS:"):
                    rss = kb(line)
                elif line.startswith("VmHWM:"):
                    hwm = kb(line)
    except OSError:
        return None
    return name, rss, hwm

def pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return kb(line)
    except OSError:
        pass
    return 0

def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:160]
    except OSError:
        return ""

def main():
    args = sys.argv[1:]
    out_json = args.pop(0)
    stdout = stdin = None
    while args[0] != "--":
        opt = args.pop(0)
        if opt == "--stdout":
            stdout = open(args.pop(0), "wb")
        elif opt == "--stdin":
            stdin = open(args.pop(0), "rb")
        else:
            sys.exit(f"measure.py: unknown option {opt}")
    cmd = args[1:]
    timefile = out_json + ".time"
    wrap = ["/usr/bin/time", "-f", "%e %M %P %U %S", "-o", timefile] if os.path.exists("/usr/bin/time") else []
    t0 = time.monotonic()
    p = subprocess.Popen(wrap + cmd, stdout=stdout, stdin=stdin)
    peak_rss = peak_pss = 0
    peak_parts = {}
    procs = {}  # pid -> [name, max VmHWM, max VmRSS, cmdline]
    samples = 0
    while p.poll() is None:
        todo = children(p.pid) if wrap else [p.pid]
        tree = []
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += children(pid)
        with_pss = samples % PSS_EVERY == 0
        total_rss = total_pss = 0
        parts = {}
        for pid in tree:
            st = status(pid)
            if st is None or st[0] is None:
                continue
            name, rss, hwm = st
            total_rss += rss
            if with_pss:
                total_pss += pss(pid)
            parts[f"{name}[{pid}]"] = rss
            rec = procs.setdefault(pid, [name, 0, 0, ""])
            if rec[0] != name or not rec[3]:  # the name changes at exec
                rec[0], rec[3] = name, cmdline(pid)
            rec[1] = max(rec[1], hwm)
            rec[2] = max(rec[2], rss)
        samples += 1
        if total_rss > peak_rss:
            peak_rss, peak_parts = total_rss, parts
        peak_pss = max(peak_pss, total_pss)
        time.sleep(INTERVAL)
    wall = time.monotonic() - t0
    me = resource.getrusage(resource.RUSAGE_SELF)
    res = {
        "cmd": cmd,
        "rc": p.returncode,
        "wall_s": round(wall, 3),
        "samples": samples,
        "sampler_cpu_s": round(me.ru_utime + me.ru_stime, 2),
        "tree_peak_rss_kb": peak_rss,
        "tree_peak_pss_kb": peak_pss,
        "tree_peak_parts_kb": peak_parts,
        "procs": {},
        "others": [],
    }
    if wrap and os.path.exists(timefile):
        with open(timefile) as f:
            last = f.read().strip().splitlines()[-1].split()
        try:
            res["time_e_s"] = float(last[0])
            res["time_M_kb"] = int(last[1])
            res["time_cpu_pct"] = last[2]
            res["time_user_s"] = float(last[3])
            res["time_sys_s"] = float(last[4])
        except (IndexError, ValueError):
            res["time_raw"] = " ".join(last)
    known = {"supabackup", "pg_dump", "pg_dumpall", "pg_restore", "bash", "zstd", "xz"}
    for pid, (name, hwm, rss, cl) in procs.items():
        if name.startswith("tokio-") and hwm == 0:
            continue  # a fork sampled before its exec
        e = res["procs"].setdefault(name, {"count": 0, "max_hwm_kb": 0, "sum_hwm_kb": 0})
        e["count"] += 1
        e["max_hwm_kb"] = max(e["max_hwm_kb"], hwm)
        e["sum_hwm_kb"] += hwm
        # Forked children not yet exec'ed carry the thread's name (tokio-*).
        if name not in known and not name.startswith("tokio-"):
            res["others"].append(f"{name} ({hwm / 1024:.1f} MB): {cl or '(exited)'}")
    with open(out_json, "w") as f:
        json.dump(res, f, indent=1)
    sys.exit(p.returncode)

main()
PY

cat >"$WORK/report.py" <<'PY'
"""report.py RESULTS_DIR NAME... : the results table. NAME.N.json are the
rounds of one method; wall time and CPU are their median, memory their max."""
import glob, json, os, statistics, sys

res_dir, names = sys.argv[1], sys.argv[2:]
MB = 1024 * 1024

def load(name):
    runs = []
    for p in sorted(glob.glob(os.path.join(res_dir, name + ".*.json"))):
        runs.append(json.load(open(p)))
    if not runs:
        return None
    by_rss = max(runs, key=lambda r: r["tree_peak_rss_kb"])
    walls = [r["wall_s"] for r in runs]
    cpus = [r.get("time_user_s", 0) + r.get("time_sys_s", 0) for r in runs]
    pcts = [float(str(r.get("time_cpu_pct", "0")).rstrip("%") or 0) for r in runs]
    agg = {
        "n": len(runs), "walls": walls,
        "wall_s": statistics.median(walls),
        "cpu_s": statistics.median(cpus),
        "cpu_pct": statistics.median(pcts),
        "tree_peak_rss_kb": by_rss["tree_peak_rss_kb"],
        "tree_peak_pss_kb": max(r["tree_peak_pss_kb"] for r in runs),
        "time_M_kb": max(r.get("time_M_kb", 0) for r in runs),
        "procs": by_rss["procs"], "parts": by_rss["tree_peak_parts_kb"],
        "others": sorted({o for r in runs for o in r.get("others", [])}),
        "sampler_cpu_s": max(r.get("sampler_cpu_s", 0) for r in runs),
        "own_kb": max(r["procs"].get("supabackup", {}).get("max_hwm_kb", 0) for r in runs),
    }
    sp = os.path.join(res_dir, name + ".size")
    agg["size"] = int(open(sp).read().split()[0]) if os.path.exists(sp) else None
    lp = os.path.join(res_dir, name + ".label")
    agg["label"] = open(lp).read().strip() if os.path.exists(lp) else name
    return agg

rows = {n: r for n in names if (r := load(n))}
raw, zst = rows.get("raw"), rows.get("zstd")

def fmt_row(r):
    spread = f"{min(r['walls']):.1f}-{max(r['walls']):.1f}" if r["n"] > 1 else "-"
    return [r["label"], str(r["n"]), f"{r['wall_s']:.1f}", spread,
            f"{r['wall_s'] / raw['wall_s']:.2f}x" if raw else "-",
            f"{r['cpu_s']:.1f}", f"{r['cpu_pct']:.0f}%",
            f"{r['tree_peak_rss_kb'] / 1024:.1f}", f"{r['tree_peak_pss_kb'] / 1024:.1f}",
            f"{r['time_M_kb'] / 1024:.1f}",
            f"{r['size']:,}" if r["size"] is not None else "-",
            f"{r['size'] / MB:.1f}" if r["size"] is not None else "-",
            f"{r['size'] / zst['size']:.3f}x" if (zst and r["size"]) else "-"]

head = ["method", "runs", "wall s", "min-max", "time/raw", "CPU s", "CPU%",
        "tree RSS MB", "tree PSS MB", "%M MB", "output bytes", "MB", "size/zstd-3"]
table = [head] + [fmt_row(rows[n]) for n in names if n in rows]
widths = [max(len(r[i]) for r in table) for i in range(len(head))]
def line(r):
    return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
print(line(table[0]))
print("  ".join("-" * w for w in widths))
for r in table[1:]:
    print(line(r))
print("""
runs        : how many times it ran (rounds interleave the methods); wall s / CPU are medians,
              memory columns the maximum over the runs
wall s      : elapsed time of the whole command (pipelines: until the last stage ends)
time/raw    : wall s / raw pg_dump's wall s
CPU s, CPU% : GNU time user+sys of the command and its children, and %P = that / wall.
              The PostgreSQL server's own CPU (a backend per connection) is NOT included.
tree RSS MB : peak of the SUM of VmRSS over the command's whole process tree, sampled every 50 ms
              (supabackup + each pg_dump/pg_dumpall/pg_restore it runs; bash + pg_dump + zstd/xz).
              Shared library pages count once per process, so this is an upper bound.
tree PSS MB : the same with PSS (shared pages split between processes), sampled every 250 ms
%M MB       : GNU time %M = max RSS of the single largest process of the tree (not a sum)
size/zstd-3 : output size / the `pg_dump | zstd` file's size (supabackup: all files of the
              backup folder, manifest included)""")

print("\nPer-process detail (run with the highest tree RSS):")
for n in names:
    r = rows.get(n)
    if not r:
        continue
    procs = ", ".join(
        f"{name} x{e['count']} {e['max_hwm_kb']/1024:.1f} MB"
        + (f" (sum {e['sum_hwm_kb']/1024:.1f})" if e["count"] > 1 else "")
        for name, e in sorted(r["procs"].items(), key=lambda kv: -kv[1]["max_hwm_kb"]))
    parts = ", ".join(f"{k} {v/1024:.1f}" for k, v in sorted(r["parts"].items(), key=lambda kv: -kv[1]))
    print(f"  {r['label']}:")
    print(f"    peak RSS per process (VmHWM): {procs}")
    print(f"    the tree at its summed-RSS peak (MB): {parts}")
    if r["own_kb"]:
        kids = sum(e["sum_hwm_kb"] for name, e in r["procs"].items()
                   if name in ("pg_dump", "pg_dumpall", "pg_restore"))
        print(f"    supabackup's own peak {r['own_kb']/1024:.1f} MB + every pg_dump/pg_dumpall/pg_restore peak "
              f"{kids/1024:.1f} MB = {(r['own_kb'] + kids)/1024:.1f} MB (a bound: they never all peak at once)")
    for o in r["others"]:
        print(f"    other process in the tree: {o}")
    if r["n"] > 1:
        print(f"    wall s of each run: {', '.join(f'{w:.1f}' for w in r['walls'])}")
    print(f"    (the sampler itself used up to {r['sampler_cpu_s']:.1f} s CPU)")

sb = rows.get("sb_zstd")
sb1 = rows.get("sb_zstd1")
print("\nTargets (full backup at defaults: zstd 3, encrypted, checksummed):")
if sb1 and raw:
    t = sb1["wall_s"] / raw["wall_s"]
    print(f"  wall time, one stream <= 1.1x raw pg_dump        : {t:.2f}x  ({sb1['wall_s']:.1f} s vs {raw['wall_s']:.1f} s)  {'PASS' if t <= 1.1 else 'FAIL'}")
if sb and raw:
    t = sb["wall_s"] / raw["wall_s"]
    print(f"  wall time, parallel streams <= 0.8x raw pg_dump  : {t:.2f}x  ({sb['wall_s']:.1f} s vs {raw['wall_s']:.1f} s)  {'PASS' if t <= 0.8 else 'FAIL'}")
if sb and zst:
    s = sb["size"] / zst["size"]
    print(f"  size <= pg_dump | zstd -3     : {s:.3f}x ({sb['size']:,} vs {zst['size']:,} bytes)  {'PASS' if s <= 1.0 else 'FAIL'}")
for n in ("sb_zstd", "small", "sb_xz"):
    r = rows.get(n)
    if r:
        m = r["tree_peak_rss_kb"] / 1024
        print(f"  peak tree RSS <= 100 MB       : {m:.1f} MB  ({r['label']})  {'PASS' if m <= 100 else 'FAIL'}")
PY

measure() { # measure NAME ROUND LABEL [--stdout F] [--stdin F] -- CMD...
    local name=$1 round=$2 label=$3
    shift 3
    printf '%s\n' "$label" >"$RES/$name.label"
    log "timing: $label (run $round)   [load avg $(cut -d' ' -f1-3 /proc/loadavg)]"
    python3 "$WORK/measure.py" "$RES/$name.$round.json" "$@" ||
        die "'$label' failed (exit $?)"
    python3 - "$RES/$name.$round.json" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[1]))
print(f"    {r['wall_s']:.1f} s, CPU {r.get('time_cpu_pct', '?')}, tree RSS peak {r['tree_peak_rss_kb']/1024:.1f} MB")
PY
}
# Like measure, but a failure is reported instead of ending the run.
measure_soft() {
    local name=$1 round=$2 label=$3
    shift 3
    printf '%s\n' "$label" >"$RES/$name.label"
    log "timing: $label (run $round)"
    if python3 "$WORK/measure.py" "$RES/$name.$round.json" "$@"; then
        return 0
    fi
    log "    '$label' FAILED (exit $?): left out of the table"
    rm -f "$RES/$name.$round.json"
    return 1
}
set_size() { printf '%s\n' "$2" >"$RES/$1.size"; }
mib_early() { awk -v b="$1" 'BEGIN {printf "%.0f MB", b / 1048576}'; }
file_size() { stat -c %s "$1"; }
dir_size() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

# --- 1. build supabackup --------------------------------------------------------
BUILD_DESC="release build, $TARGET_DIR"
if [[ -n ${BENCH_SUPABACKUP_BIN:-} ]]; then
    cp "$BENCH_SUPABACKUP_BIN" "$WORK/supabackup"
    BUILD_DESC="binary $BENCH_SUPABACKUP_BIN"
else
    command -v cargo >/dev/null || die "cargo is required (or set BENCH_SUPABACKUP_BIN)"
    attempt=0
    until (cd "$REPO" && CARGO_TARGET_DIR=$TARGET_DIR nice -n 19 cargo build --release --bin supabackup); do
        attempt=$((attempt + 1))
        [[ $attempt -le $BUILD_RETRIES ]] || die "release build failed $attempt times"
        log "release build failed (source mid-edit?); retrying in 60 s ($attempt/$BUILD_RETRIES)"
        sleep 60
    done
    # A private copy: a concurrent rebuild cannot swap the binary mid-run.
    cp "$TARGET_DIR/release/supabackup" "$WORK/supabackup"
fi
SB=$WORK/supabackup
REV=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if (cd "$REPO" && ! git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null); then REV="$REV+dirty"; fi

# --- 2. the cluster -------------------------------------------------------------
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PGPW=$(openssl rand -hex 24)
log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') from $PGBIN on 127.0.0.1:$PORT, cluster in $PGDATA"

umask 077
printf '%s\n' "$PGPW" >"$PGROOT/pwfile"
[[ $IS_ROOT -eq 1 ]] && chown postgres: "$PGROOT/pwfile"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --pwfile="$PGROOT/pwfile" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --no-locale >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
rm -f "$PGROOT/pwfile"

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -keyout "$PGROOT/server.key" -out "$PGROOT/server.crt" >/dev/null 2>&1
[[ $IS_ROOT -eq 1 ]] && chown postgres: "$PGROOT/server.key" "$PGROOT/server.crt"
chmod 0600 "$PGROOT/server.key"

as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null <<EOF

# --- scripts/bench.sh ---
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$PGROOT'
ssl = on
ssl_cert_file = '$PGROOT/server.crt'
ssl_key_file = '$PGROOT/server.key'
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
maintenance_work_mem = 256MB
EOF
as_pg tee "$PGDATA/pg_hba.conf" >/dev/null <<EOF
# scripts/bench.sh: TLS + SCRAM only, as on Supabase.
local   all  all                 scram-sha-256
hostssl all  all  127.0.0.1/32   scram-sha-256
EOF
umask 022

as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGROOT/server.log" -w -t 60 start >/dev/null ||
    { cat "$PGROOT/server.log" >&2; die "the server did not start"; }
PG_STARTED=1

printf '127.0.0.1:%s:*:postgres:%s\n' "$PORT" "$PGPW" >"$WORK/pgpass"
chmod 0600 "$WORK/pgpass"
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGSSLMODE=require PGPASSFILE=$WORK/pgpass
unset PGPASSWORD PGDATABASE PGSERVICE
export PATH="$PGBIN:$PATH"

psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
[[ $(psql_q -d postgres -Atc "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == t ]] ||
    die "the connection is not using TLS"

# --- 3. data --------------------------------------------------------------------
cat >"$WORK/docs.sql" <<'SQL'
CREATE TABLE docs (
    id bigserial PRIMARY KEY,
    title text,
    body text,
    meta jsonb,
    created_at timestamptz
);
CREATE TEMP TABLE vocab AS SELECT w, array_length(w, 1) AS n FROM (SELECT ARRAY[
 'the','of','and','to','in','is','that','for','it','as','was','with','be','by','on','not','he','this','are','or',
 'his','from','at','which','but','have','an','had','they','you','were','their','one','all','we','can','her','has','there','been',
 'if','more','when','will','would','who','so','no','she','other','its','may','these','about','than','into','only','after','some','time',
 'customer','order','invoice','payment','account','shipping','address','product','inventory','warehouse','supplier','refund','subscription','plan','billing','checkout',
 'database','backup','restore','replica','schema','migration','index','query','latency','throughput','cluster','region','storage','bucket','function','trigger',
 'user','session','token','password','email','profile','avatar','settings','notification','message','comment','thread','reply','review','rating','report',
 'quickly','carefully','usually','rarely','always','never','often','sometimes','probably','certainly','almost','nearly','still','already','again','together',
 'important','available','different','possible','general','several','special','certain','personal','open','red','blue','green','large','small','early',
 'analysis','approach','problem','question','decision','development','environment','performance','experience','information','management','relationship','situation','strategy','success','system',
 'Berlin','London','Paris','Madrid','Lisbon','Tokyo','Toronto','Sydney','Chicago','Amsterdam','Vienna','Dublin','Oslo','Prague','Warsaw','Zurich',
 'January','February','March','April','May','June','July','August','September','October','November','December',
 'build','check','create','delete','deliver','deploy','describe','explain','follow','handle','improve','include','measure','provide','receive','update'
]::text[] AS w) s;

INSERT INTO docs (title, body, meta, created_at)
SELECT initcap(t.title),
       b.body,
       jsonb_build_object(
           'author', jsonb_build_object(
               'id', 1 + (random() * 50000)::int,
               'name', initcap(v.w[1 + floor(random() * v.n)::int]) || ' ' || initcap(v.w[1 + floor(random() * v.n)::int]),
               'email', v.w[1 + floor(random() * v.n)::int] || '.' || (random() * 999)::int || '@example.com'),
           'tags', tg.tags,
           'status', (ARRAY['draft', 'published', 'archived', 'review'])[1 + g.i % 4],
           'lang', (ARRAY['en', 'de', 'fr', 'es', 'pt'])[1 + (g.i / 7) % 5],
           'version', 1 + g.i % 9,
           'stats', jsonb_build_object(
               'views', (random() * 100000)::int,
               'likes', (random() * 5000)::int,
               'score', round(random()::numeric, 4),
               'flags', jsonb_build_array(random() < 0.5, random() < 0.1)),
           'source', jsonb_build_object(
               'ip', '10.' || (random() * 255)::int || '.' || (random() * 255)::int || '.' || (random() * 255)::int,
               'request_id', md5(g.i::text || random()::text),
               'referrer', CASE WHEN random() < 0.3 THEN NULL ELSE 'https://' || v.w[1 + floor(random() * v.n)::int] || '.example.org/' || v.w[1 + floor(random() * v.n)::int] END)),
       now() - random() * interval '730 days'
FROM generate_series(1, :rows) AS g(i)
CROSS JOIN vocab v
CROSS JOIN LATERAL (
    SELECT string_agg(v.w[1 + floor(random() * v.n)::int + 0 * k], ' ') AS title
    FROM generate_series(1, 3 + g.i % 6) AS s(k)) t
CROSS JOIN LATERAL (
    SELECT string_agg(
               CASE WHEN r < 0.02 THEN md5(random()::text)
                    WHEN r < 0.06 THEN ((random() * 100000)::int)::text
                    ELSE v.w[1 + floor(random() * v.n)::int] END
               || CASE WHEN random() < 0.08 THEN '.' WHEN random() < 0.05 THEN ',' ELSE '' END,
               ' ') AS body
    FROM (SELECT random() AS r FROM generate_series(1, 40 + (g.i::bigint * 7919) % 200)) x) b
CROSS JOIN LATERAL (
    SELECT jsonb_agg(v.w[1 + floor(random() * v.n)::int + 0 * k]) AS tags
    FROM generate_series(1, 1 + g.i % 5) AS s(k)) tg;
SQL

make_db() { # make_db NAME SCALE DOC_ROWS
    local db=$1 scale=$2 rows=$3 t0=$SECONDS
    log "creating database $db: pgbench scale $scale + $rows docs rows"
    psql_q -d postgres -c "CREATE DATABASE $db"
    pgbench -i -q -s "$scale" -I dtGvp "$db" >"$WORK/pgbench-$db.log" 2>&1 ||
        { cat "$WORK/pgbench-$db.log" >&2; die "pgbench -i failed"; }
    tail -n 1 "$WORK/pgbench-$db.log" >&2
    psql_q -d "$db" -v rows="$rows" -f "$WORK/docs.sql"
    psql_q -d "$db" -c "VACUUM ANALYZE docs"
    log "$db ready in $((SECONDS - t0)) s: $(psql_q -d "$db" -Atc "SELECT pg_size_pretty(pg_database_size(current_database())) || ' (' || pg_database_size(current_database()) || ' bytes)'")"
}

make_db bench "$SCALE" "$DOC_ROWS"
DB_SIZE=$(psql_q -d bench -Atc "SELECT pg_database_size('bench')")
DB_SIZES=$(psql_q -d bench -Atc "SELECT string_agg(relname || ' ' || pg_size_pretty(pg_total_relation_size(oid)), ', ' ORDER BY pg_total_relation_size(oid) DESC) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")
DOC_AVG=$(psql_q -d bench -Atc "SELECT round(avg(octet_length(body))) || ' B body, ' || round(avg(octet_length(meta::text))) || ' B meta' FROM docs")

# --- 4. supabackup set-up -------------------------------------------------------
SBDATA=$WORK/sbdata
SB_ENV=(env -u PGHOST -u PGPORT -u PGUSER -u PGSSLMODE -u PGPASSFILE
    SUPABACKUP_DATA_DIR="$SBDATA" SUPABACKUP_NO_KEYCHAIN=1
    SUPABACKUP_PASSPHRASE="bench master $PGPW" SUPABACKUP_BACKUP_PASSPHRASE="bench backup $PGPW"
    SUPABACKUP_PG_BIN_DIR="$PGBIN")
sb() { "${SB_ENV[@]}" "$SB" "$@"; }
add_project() { # add_project NAME DB
    printf '%s\n' "$PGPW" |
        sb project add --name "$1" --ref "$1" --db-url "postgresql://postgres@127.0.0.1:$PORT/$2?sslmode=require" \
            --db-password-stdin >&2
}
add_project bench bench
# A first tiny backup: creates and stores the backup passphrase, warms the binary.
sb backup run bench --type roles --json >/dev/null

sb_backup() { # sb_backup NAME ROUND LABEL PROJECT [ARGS...]
    local name=$1 round=$2 label=$3 project=$4
    shift 4
    measure "$name" "$round" "$label" --stdout "$RES/$name.$round.out" -- \
        "${SB_ENV[@]}" "$SB" backup run "$project" --type full "$@" --json
    local folder
    folder=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["file_path"])' "$RES/$name.$round.out")
    [[ -d $folder ]] || folder=$SBDATA/$folder
    [[ -d $folder ]] || die "backup folder of $label not found: $folder"
    set_size "$name" "$(dir_size "$folder")"
    log "    $(cd "$folder" && find . -type f -printf '%P %s\n' | sort | tr '\n' ' ')"
}

SMALL_SIZE=
if [[ $SKIP_SMALL == 1 ]]; then
    log "skipped: small-database memory run (BENCH_SKIP_SMALL=1)"
else
    make_db bench_small "$SMALL_SCALE" "$SMALL_DOC_ROWS"
    SMALL_SIZE=$(psql_q -d bench -Atc "SELECT pg_database_size('bench_small')")
    add_project bench-small bench_small
fi

# --- 5. measurements ------------------------------------------------------------
PG_DUMP=$PGBIN/pg_dump
if [[ $SKIP_WARMUP != 1 ]]; then
    log "warm-up: pg_dump > /dev/null (untimed, fills the page cache)"
    "$PG_DUMP" -d bench -f /dev/null
fi

PLAIN_SIZE=
for ((round = 1; round <= REPEAT; round++)); do
    log "--- round $round of $REPEAT"
    measure raw "$round" "pg_dump (plain)" -- "$PG_DUMP" -d bench -f "$OUT/raw.sql"
    PLAIN_SIZE=$(file_size "$OUT/raw.sql")
    set_size raw "$PLAIN_SIZE"
    rm -f "$OUT/raw.sql"

    # shellcheck disable=SC2016
    measure zstd "$round" "pg_dump | zstd $ZSTD_ARGS" -- \
        bash -c 'set -o pipefail; "$1" -d bench | zstd $2 -q -c >"$3"' _ "$PG_DUMP" "$ZSTD_ARGS" "$OUT/dump.sql.zst"
    set_size zstd "$(file_size "$OUT/dump.sql.zst")"
    rm -f "$OUT/dump.sql.zst"

    measure custom "$round" "pg_dump -Fc" -- "$PG_DUMP" -d bench -Fc -f "$OUT/dump.custom"
    set_size custom "$(file_size "$OUT/dump.custom")"
    rm -f "$OUT/dump.custom"

    sb_backup sb_zstd "$round" "supabackup full at defaults (zstd 3, enc, xxh3 rows, 2 streams)" bench
    sb_backup sb_zstd1 "$round" "supabackup full --streams 1" bench --streams 1

    if [[ -n $SMALL_SIZE ]]; then
        sb_backup small "$round" "supabackup full, bench_small" bench-small
    fi
done

if [[ $SKIP_XZ == 1 ]]; then
    log "skipped: pg_dump | xz and supabackup --compression xz (BENCH_SKIP_XZ=1)"
else
    # shellcheck disable=SC2016
    measure xz 1 "pg_dump | xz $XZ_ARGS" -- \
        bash -c 'set -o pipefail; "$1" -d bench | xz $2 -c >"$3"' _ "$PG_DUMP" "$XZ_ARGS" "$OUT/dump.sql.xz"
    set_size xz "$(file_size "$OUT/dump.sql.xz")"
    rm -f "$OUT/dump.sql.xz"
    sb_backup sb_xz 1 "supabackup full --compression xz" bench --compression xz
fi

# --- 5b. off-site upload ---------------------------------------------------------
# A backup of `bench` without compression (about the size of the plain dump,
# ~1 GB at the defaults), then `backup copy` of it to a folder destination and
# to moto's S3 server on loopback: multipart upload, then every object read
# back and hashed. The tree RSS shows memory does not follow the upload size.
UPLOAD_SIZE=
if [[ ${BENCH_SKIP_UPLOAD:-0} == 1 ]]; then
    log "skipped: off-site upload (BENCH_SKIP_UPLOAD=1)"
else
    MOTO=$(command -v moto_server || true)
    [[ -n $MOTO ]] || MOTO=$REPO/target/test-tools/venv/bin/moto_server
    [[ -x $MOTO ]] || die "moto_server not found: run scripts/test.sh --deps-only (it installs it) or set BENCH_SKIP_UPLOAD=1"
    S3PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$MOTO" -H 127.0.0.1 -p "$S3PORT" >"$WORK/moto.log" 2>&1 &
    MOTO_PID=$!
    trap 'kill "$MOTO_PID" 2>/dev/null || true; cleanup' EXIT
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$S3PORT/" && break
        sleep 0.2
    done
    curl -s -o /dev/null -X PUT "http://127.0.0.1:$S3PORT/bench-bucket" || die "moto did not start"
    printf 'bench-secret' | sb destination add bench-s3 --url s3://bench-bucket/sb \
        --endpoint "http://127.0.0.1:$S3PORT" --path-style --access-key-id bench --secret-stdin >&2
    sb destination add bench-folder --url "file://$WORK/offsite" >&2
    # The floor: start, unlock the vault (Argon2id of the master passphrase
    # dominates the peak), open the S3 destination, one small object.
    measure up_floor 1 "destination test S3 (start + unlock + one small object)" -- \
        "${SB_ENV[@]}" "$SB" destination test bench-s3
    set_size up_floor 0
    sb_backup upload_src 1 "supabackup full --compression none (the backup to upload)" bench --compression none
    UP_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$RES/upload_src.1.out")
    UPLOAD_SIZE=$(cat "$RES/upload_src.size")
    measure up_folder 1 "backup copy --to folder ($(mib_early "$UPLOAD_SIZE"))" -- \
        "${SB_ENV[@]}" "$SB" backup copy "$UP_ID" --to bench-folder
    set_size up_folder "$(dir_size "$WORK/offsite")"
    measure up_s3 1 "backup copy --to S3 (moto, multipart, $(mib_early "$UPLOAD_SIZE"))" -- \
        "${SB_ENV[@]}" "$SB" backup copy "$UP_ID" --to bench-s3
    set_size up_s3 "$UPLOAD_SIZE"
    measure verify_s3 1 "verify --destination S3 (re-reads every object)" -- \
        "${SB_ENV[@]}" "$SB" verify "$UP_ID" --destination bench-s3
    set_size verify_s3 "$UPLOAD_SIZE"
    kill "$MOTO_PID" 2>/dev/null || true
fi

# --- 5c. incremental backups -----------------------------------------------------
# BENCH_INCR_DAYS days of churn on `bench` (1 % of docs updated with their
# text and jsonb, 0.2 % inserted, 0.05 % deleted; 1 % of pgbench_accounts
# updated; pgbench_history appended). Each day: an incremental backup into the
# repository, a plain pg_dump (for the ideal delta: `zstd -3 --patch-from` of
# the previous day's dump), and the same dump fed to restic. Then a restore
# of the last snapshot against psql --single-transaction of the plain dump.
INCR_DAYS=${BENCH_INCR_DAYS:-7}
RESTORE_JOBS=${BENCH_RESTORE_JOBS:-4}
INCR_REPORT=
if [[ ${BENCH_SKIP_INCR:-0} == 1 ]]; then
    log "skipped: incremental backups (BENCH_SKIP_INCR=1)"
else
    command -v restic >/dev/null || die "restic not found (apt-get install restic) or set BENCH_SKIP_INCR=1"
    export RESTIC_REPOSITORY=$WORK/restic RESTIC_PASSWORD="bench restic $PGPW" RESTIC_CACHE_DIR=$WORK/restic-cache
    restic init -q >/dev/null
    repo_bytes() { # the repository plus every snapshot folder (lists, manifests)
        local total=0 f
        [[ -d $SBDATA/repo ]] && total=$(dir_size "$SBDATA/repo")
        for f in "$SBDATA"/backups/bench/*/*-incremental-*; do
            [[ -d $f ]] && total=$((total + $(dir_size "$f")))
        done
        echo "$total"
    }
    churn() { # churn DAY
        psql_q -d bench <<SQL
UPDATE docs SET body = body || ' edited on day $1',
                meta = jsonb_set(meta, '{version}', to_jsonb(coalesce((meta->>'version')::int, 0) + 1))
 WHERE id % 100 = $1;
INSERT INTO docs (title, body, meta, created_at)
SELECT title, body || ' (copy)', meta, now() FROM docs WHERE id % 500 = $1;
DELETE FROM docs WHERE id % 2000 = ($1 + 977) % 2000;
UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid % 100 = $1;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)
SELECT 1 + g % 10, 1, g, g % 1000, now() FROM generate_series(1, 20000) g;
SQL
    }
    printf 'day\tsupabackup_growth\tideal_delta\trestic_growth\tincr_wall_s\tdump_wall_s\n' >"$RES/incr.tsv"
    for ((day = 0; day <= INCR_DAYS; day++)); do
        [[ $day -gt 0 ]] && churn "$day"
        before=$(repo_bytes)
        measure "incr_d$day" 1 "supabackup incremental, day $day" --stdout "$RES/incr_d$day.out" -- \
            "${SB_ENV[@]}" "$SB" backup run bench --type incremental --json
        set_size "incr_d$day" $(($(repo_bytes) - before))
        t0=$(date +%s.%N)
        "$PG_DUMP" -d bench -f "$OUT/day$day.sql"
        dump_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
        rbefore=$(dir_size "$RESTIC_REPOSITORY")
        restic backup -q --stdin --stdin-filename bench.sql <"$OUT/day$day.sql" >/dev/null
        rgrowth=$(($(dir_size "$RESTIC_REPOSITORY") - rbefore))
        if [[ $day -gt 0 ]]; then
            zstd -3 -q -f --patch-from="$OUT/day$((day - 1)).sql" "$OUT/day$day.sql" -o "$OUT/patch.zst"
            ideal=$(file_size "$OUT/patch.zst")
            rm -f "$OUT/patch.zst" "$OUT/day$((day - 1)).sql"
        else
            zstd -3 -q -f "$OUT/day0.sql" -o "$OUT/day0.sql.zst"
            ideal=$(file_size "$OUT/day0.sql.zst")
            rm -f "$OUT/day0.sql.zst"
        fi
        wall=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["wall_s"])' "$RES/incr_d$day.1.json")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$day" "$(cat "$RES/incr_d$day.size")" "$ideal" "$rgrowth" "$wall" "$dump_s" >>"$RES/incr.tsv"
        log "    day $day: supabackup +$(cat "$RES/incr_d$day.size") B, ideal $ideal B, restic +$rgrowth B"
    done
    # Restore the last snapshot into an empty database vs psql of the plain dump.
    LAST_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$RES/incr_d$INCR_DAYS.out")
    psql_q -d postgres -c "CREATE DATABASE restore_plain" -c "CREATE DATABASE restore_sb" -c "CREATE DATABASE restore_sbp"
    measure restore_psql 1 "psql --single-transaction -f (plain dump of day $INCR_DAYS)" -- \
        psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d restore_plain -f "$OUT/day$INCR_DAYS.sql" -o /dev/null
    set_size restore_psql "$(file_size "$OUT/day$INCR_DAYS.sql")"
    if measure_soft restore_sb 1 "supabackup restore run (from the repository, one transaction)" -- \
        "${SB_ENV[@]}" SUPABACKUP_TARGET_PASSWORD="$PGPW" "$SB" restore run "$LAST_ID" \
        --to-url "postgresql://postgres@127.0.0.1:$PORT/restore_sb?sslmode=require" --mode new --yes; then
        set_size restore_sb "$(file_size "$OUT/day$INCR_DAYS.sql")"
    fi
    if measure_soft restore_sbp 1 "supabackup restore run --jobs $RESTORE_JOBS (from the repository, parallel)" -- \
        "${SB_ENV[@]}" SUPABACKUP_TARGET_PASSWORD="$PGPW" "$SB" restore run "$LAST_ID" \
        --to-url "postgresql://postgres@127.0.0.1:$PORT/restore_sbp?sslmode=require" --mode new \
        --jobs "$RESTORE_JOBS" --yes; then
        set_size restore_sbp "$(file_size "$OUT/day$INCR_DAYS.sql")"
    fi
    rm -f "$OUT/day$INCR_DAYS.sql"
    INCR_REPORT=1
fi

# --- 5d. a remote-like network -------------------------------------------------
# The same server behind a TCP proxy that adds NET_DELAY_MS of round trip
# and shares NET_MBIT Mbit/s each way among all connections (what a remote
# Supabase project looks like from here). netem on a veth pair would be the
# kernel's way; this machine's kernel has no netem qdisc, so a userspace
# proxy stands in: each read is forwarded after its transmission time at
# the shared rate plus half the round trip.
NET_REPORT=
NET_DELAY_MS=${BENCH_NET_DELAY_MS:-10}
NET_MBIT=${BENCH_NET_MBIT:-500}
if [[ ${BENCH_SKIP_NET:-0} == 1 ]]; then
    log "skipped: remote-like network run (BENCH_SKIP_NET=1)"
else
    cat >"$WORK/netproxy.py" <<'PY'
import asyncio, sys, time
lport, rport, rtt_ms, mbit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
one_way = rtt_ms / 2000.0
class Link:
    """One direction of the link: a shared transmitter at `rate` bytes/s."""
    def __init__(self, rate):
        self.rate, self.free_at = rate, 0.0
    def send(self, n):
        start = max(time.monotonic(), self.free_at)
        self.free_at = start + n / self.rate
        return self.free_at + one_way
up, down = Link(mbit * 1e6 / 8), Link(mbit * 1e6 / 8)
async def pipe(reader, writer, link):
    q = asyncio.Queue()
    async def deliver():
        while (item := await q.get()) is not None:
            due, data = item
            if (d := due - time.monotonic()) > 0:
                await asyncio.sleep(d)
            writer.write(data)
            await writer.drain()
        writer.close()
    task = asyncio.create_task(deliver())
    try:
        while data := await reader.read(65536):
            q.put_nowait((link.send(len(data)), data))
            while q.qsize() > 256:
                await asyncio.sleep(0.001)
    except (ConnectionError, OSError):
        pass
    finally:
        q.put_nowait(None)
        try:
            await task
        except (ConnectionError, OSError):
            pass
async def client(cr, cw):
    try:
        sr, sw = await asyncio.open_connection("127.0.0.1", rport)
    except OSError:
        cw.close()
        return
    await asyncio.gather(pipe(cr, sw, up), pipe(sr, cw, down))
async def main():
    server = await asyncio.start_server(client, "127.0.0.1", lport)
    async with server:
        await server.serve_forever()
asyncio.run(main())
PY
    NETPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    python3 "$WORK/netproxy.py" "$NETPORT" "$PORT" "$NET_DELAY_MS" "$NET_MBIT" >"$WORK/netproxy.log" 2>&1 &
    NETPROXY_PID=$!
    printf '127.0.0.1:%s:*:postgres:%s\n' "$NETPORT" "$PGPW" >>"$WORK/pgpass"
    trap 'kill "$NETPROXY_PID" 2>/dev/null || true; kill "${MOTO_PID:-}" 2>/dev/null || true; cleanup' EXIT
    for _ in $(seq 1 50); do
        PGPORT=$NETPORT psql_q -d postgres -Atc "SELECT 1" >/dev/null 2>&1 && break
        sleep 0.2
    done
    printf '%s\n' "$PGPW" |
        sb project add --name bench-net --ref bench-net \
            --db-url "postgresql://postgres@127.0.0.1:$NETPORT/bench?sslmode=require" --db-password-stdin >&2
    log "--- remote-like network: ${NET_DELAY_MS} ms round trip, ${NET_MBIT} Mbit/s each way (userspace proxy on :$NETPORT)"
    measure net_raw 1 "pg_dump (plain), over the network" -- env PGPORT="$NETPORT" "$PG_DUMP" -d bench -f "$OUT/net.sql"
    set_size net_raw "$(file_size "$OUT/net.sql")"
    sb_backup net_sb 1 "supabackup full at defaults, over the network" bench-net
    sb_backup net_sb1 1 "supabackup full --streams 1, over the network" bench-net --streams 1
    NET_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$RES/net_sb.1.out")
    psql_q -d postgres -c "CREATE DATABASE net_plain" -c "CREATE DATABASE net_sb" -c "CREATE DATABASE net_sbp"
    measure net_psql 1 "psql --single-transaction -f (plain dump), over the network" -- \
        env PGPORT="$NETPORT" psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d net_plain -f "$OUT/net.sql" -o /dev/null
    set_size net_psql "$(file_size "$OUT/net.sql")"
    rm -f "$OUT/net.sql"
    for spec in "net_rsb 1" "net_rsbp $RESTORE_JOBS"; do
        read -r name jobs <<<"$spec"
        db=net_sb
        [[ $jobs -gt 1 ]] && db=net_sbp
        measure_soft "$name" 1 "supabackup restore run --jobs $jobs, over the network" -- \
            "${SB_ENV[@]}" SUPABACKUP_TARGET_PASSWORD="$PGPW" "$SB" restore run "$NET_ID" \
            --to-url "postgresql://postgres@127.0.0.1:$NETPORT/$db?sslmode=require" --mode new \
            --jobs "$jobs" --yes || true
    done
    kill "$NETPROXY_PID" 2>/dev/null || true
    NET_REPORT=1
fi

# --- 6. report ------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN {printf "%.0f MB", b / 1048576}'; }
echo
echo "=== supabackup benchmark ($(date -u +%Y-%m-%dT%H:%MZ)) ==="
echo "machine   : $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo) RAM; load avg at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "software  : PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') (server and pg_dump), zstd $(zstd --version | grep -o 'v[0-9.]*' | head -n 1), $(xz --version | head -n 1), supabackup $REV ($BUILD_DESC)"
echo "connection: every client over TCP 127.0.0.1, TLS (sslmode=require), scram-sha-256; server on the same machine"
echo "database  : bench = pgbench scale $SCALE + docs $DOC_ROWS rows ($DOC_AVG avg) = $(mib "$DB_SIZE") ($DB_SIZE bytes)"
echo "            tables: $DB_SIZES"
echo "            plain SQL dump: $(mib "$PLAIN_SIZE") ($PLAIN_SIZE bytes)"
if [[ -n $SMALL_SIZE ]]; then
    echo "            bench_small = pgbench scale $SMALL_SCALE + docs $SMALL_DOC_ROWS rows = $(mib "$SMALL_SIZE") ($SMALL_SIZE bytes)"
fi
if [[ $SKIP_XZ == 1 ]]; then
    echo "note      : the xz runs were skipped (BENCH_SKIP_XZ=1)"
fi
echo
ORDER=(raw zstd xz custom sb_zstd sb_zstd1 sb_xz small up_floor upload_src up_folder up_s3 verify_s3 incr_d0 incr_d1 restore_psql restore_sb restore_sbp)
python3 "$WORK/report.py" "$RES" "${ORDER[@]}"
if [[ -n $INCR_REPORT ]]; then
    echo
    echo "Incremental backups, $INCR_DAYS days of churn (1 % of docs and pgbench_accounts updated a day, docs +0.2 % / -0.05 %, +20,000 pgbench_history rows):"
    python3 - "$RES/incr.tsv" "$RES" <<'PY'
import glob, json, os, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
print(f"  {'day':>3}  {'supabackup +B':>14}  {'ideal delta B':>14}  {'restic +B':>14}  {'sb/ideal':>8}  {'sb/restic':>9}  {'sb wall s':>9}  {'pg_dump s':>9}")
tot = [0, 0, 0]
for d, sb, ideal, rs, wall, dump in rows:
    sb, ideal, rs = int(sb), int(ideal), int(rs)
    if d != "0":
        tot[0] += sb; tot[1] += ideal; tot[2] += rs
    print(f"  {d:>3}  {sb:>14,}  {ideal:>14,}  {rs:>14,}  {sb / ideal:>7.2f}x  {sb / rs if rs else 0:>8.3f}x  {float(wall):>9.1f}  {float(dump):>9.1f}")
print(f"  day 0 is the first (full) snapshot; its 'ideal' is the zstd -3 size of the plain dump.")
print(f"  days 1-{len(rows) - 1} total: supabackup {tot[0]:,} B, ideal {tot[1]:,} B, restic {tot[2]:,} B")
if tot[1] and tot[2]:
    a, b = tot[0] / tot[1], tot[0] / tot[2]
    print(f"  target: growth <= 3x the ideal delta : {a:.2f}x  {'PASS' if a <= 3 else 'FAIL'}")
    print(f"  target: growth <= 0.1x restic's      : {b:.3f}x  {'PASS' if b <= 0.1 else 'FAIL'}")
def wall(n):
    p = glob.glob(os.path.join(sys.argv[2], n + ".*.json"))
    return json.load(open(p[0]))["wall_s"] if p else None
a, b = wall("restore_sb"), wall("restore_psql")
if a and b:
    print(f"  target: restore from the repository <= 1.0x psql --single-transaction : {a / b:.2f}x ({a:.1f} s vs {b:.1f} s)  {'PASS' if a / b <= 1.0 else 'FAIL'}")
c = wall("restore_sbp")
if c and b:
    print(f"  target: parallel restore (--jobs) <= 0.7x psql --single-transaction   : {c / b:.2f}x ({c:.1f} s vs {b:.1f} s)  {'PASS' if c / b <= 0.7 else 'FAIL'}")
PY
fi
if [[ -n $NET_REPORT ]]; then
    echo
    echo "Over a remote-like network (${NET_DELAY_MS} ms round trip, ${NET_MBIT} Mbit/s each way, userspace proxy; one run each):"
    python3 - "$RES" <<'PY'
import glob, json, os, sys
def run(n):
    p = glob.glob(os.path.join(sys.argv[1], n + ".*.json"))
    return json.load(open(p[0])) if p else None
rows = [("net_raw", "pg_dump (plain)", "net_raw", None), ("net_sb", "supabackup full, defaults (2 streams)", "net_raw", 0.8),
        ("net_sb1", "supabackup full --streams 1", "net_raw", 1.1),
        ("net_psql", "psql --single-transaction -f", "net_psql", None), ("net_rsb", "supabackup restore (one transaction)", "net_psql", 1.0),
        ("net_rsbp", "supabackup restore --jobs", "net_psql", 0.7)]
for name, label, ref, target in rows:
    r, b = run(name), run(ref)
    if not r:
        print(f"  {label:<40} (not measured)")
        continue
    ratio = r["wall_s"] / b["wall_s"] if b else 0
    verdict = "" if target is None else f"  target <= {target}x: {'PASS' if ratio <= target else 'FAIL'}"
    print(f"  {label:<40} {r['wall_s']:7.1f} s  {ratio:5.2f}x {ref}{verdict}")
PY
fi
if [[ -n $SMALL_SIZE ]]; then
    echo
    echo "Memory vs database size (supabackup full at defaults, max over the runs):"
    python3 - "$RES" "$SMALL_SIZE" "$DB_SIZE" <<'PY'
import glob, json, os, sys
d, small, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for name, size in (("small", small), ("sb_zstd", big)):
    runs = [json.load(open(p)) for p in glob.glob(os.path.join(d, name + ".*.json"))]
    if not runs:
        continue
    rss = max(r["tree_peak_rss_kb"] for r in runs) / 1024
    pss = max(r["tree_peak_pss_kb"] for r in runs) / 1024
    own = max(r["procs"].get("supabackup", {}).get("max_hwm_kb", 0) for r in runs) / 1024
    dump = max(r["procs"].get("pg_dump", {}).get("max_hwm_kb", 0) for r in runs) / 1024
    print(f"  db {size / 1048576:6.0f} MB: tree RSS peak {rss:5.1f} MB (PSS {pss:5.1f}),"
          f" supabackup's own peak {own:5.1f} MB, largest pg_dump {dump:5.1f} MB")
PY
fi
