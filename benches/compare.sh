#!/usr/bin/env bash
# Compares cista with restic, borg and rustic on one ~1 GB corpus of real data. Not part of CI:
# it installs packages (as root), starts PostgreSQL, and runs for an hour or more on 2 cores.
#
#   sudo bash benches/compare.sh                  # everything, 3 runs per phase
#   RUNS=1 NIGHT_RUNS=1 bash benches/compare.sh   # a quick look
#   REPORT_ONLY=1 bash benches/compare.sh         # reprint the tables from $WORK/results.tsv
#
# Environment (all optional):
#   WORK=/tmp/cista-compare    corpus, repositories, results (needs ~6 GB free)
#   RUNS=3                     runs of the file-tree phases (fresh repository each run)
#   NIGHT_RUNS=3               runs of the five-nightly-dumps phase
#   TOOLS="cista restic borg rustic"
#   CISTA=path                 a cista binary; default: `cargo build --release` of this checkout
#   CISTA_REV=...              the revision to print for that binary
#   CORPUS_MB=1024             corpus budget
#   INSTALL=1                  install missing peers (apt-get; rustic via `cargo install`)
#   RUSTIC_WAIT=0              seconds to wait for a background rustic install before skipping it
#   NICE=0                     niceness for the measured commands
#   APPEND=1                   keep earlier results (e.g. add TOOLS=rustic once it is installed)
#
# Per run and tool: init (not timed); initial backup; unchanged re-backup; re-backup after 1% of
# the files changed; restore of that snapshot (the first run's restore is compared with the
# source by `diff -r`); check --read-data (borg: check --verify-data). Then, in a fresh
# repository, five nightly pg_dumps through standard input (a pipe); the first run's last
# snapshot is read back (`dump`) and compared with the fifth dump. Each measured command runs under
# `/usr/bin/time -v` with the corpus in the page cache; results.tsv holds every sample and the
# report prints medians and cista/peer ratios.
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/cista-compare}
RUNS=${RUNS:-3}
NIGHT_RUNS=${NIGHT_RUNS:-3}
TOOLS=${TOOLS:-cista restic borg rustic}
CORPUS_MB=${CORPUS_MB:-1024}
INSTALL=${INSTALL:-1}
RUSTIC_WAIT=${RUSTIC_WAIT:-0}
NICE=${NICE:-0}
CORPUS=$WORK/corpus/data
NIGHTS=$WORK/corpus/nights
RESULTS=$WORK/results.tsv
SIZES=$WORK/sizes.tsv
PASSWORD=compare-password
export CISTA_PASSWORD=$PASSWORD RESTIC_PASSWORD=$PASSWORD BORG_PASSPHRASE=$PASSWORD
export RUSTIC_PASSWORD=$PASSWORD
export LC_ALL=C

log() { printf '[compare %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

mkdir -p "$WORK"
# shellcheck disable=SC2317
report() { python3 - "$RESULTS" "$SIZES" "$TOOLS" <<'PY'
import sys, statistics, collections
res, sizes, tools = sys.argv[1], sys.argv[2], sys.argv[3].split()
S = collections.defaultdict(list)   # (tool, phase) -> [(wall, user, sys, rss_kb)]
R = collections.defaultdict(list)   # (tool, run) -> [(phase, wall, user, sys, rss_kb)]
for line in open(res):
    t, phase, run, wall, user, sysc, rss, rc = line.split("\t")
    if rc.strip() != "0":
        continue
    S[(t, phase)].append((float(wall), float(user), float(sysc), int(rss)))
    R[(t, run)].append((phase, float(wall), float(user), float(sysc), int(rss)))
# The five nights of one run, added up (peak RSS: the largest night).
for (t, run), xs in R.items():
    ns = [x for x in xs if x[0].startswith("night")]
    if len(ns) == 5:
        S[(t, "nights_total")].append((sum(x[1] for x in ns), sum(x[2] for x in ns),
                                       sum(x[3] for x in ns), max(x[4] for x in ns)))
Z = collections.defaultdict(list)   # (tool, what) -> [bytes]
try:
    for line in open(sizes):
        t, what, run, b = line.split("\t")
        Z[(t, what)].append(int(b))
except FileNotFoundError:
    pass
tools = [t for t in tools if any(k[0] == t for k in S)]
phases = []
for k in S:
    if k[1] not in phases:
        phases.append(k[1])
order = ["backup_initial", "backup_unchanged", "backup_1pct", "restore", "check_read_data",
         "night1", "night2", "night3", "night4", "night5", "nights_total"]
phases.sort(key=lambda p: order.index(p) if p in order else 99)
peers = [t for t in tools if t != "cista"]
med = lambda xs: statistics.median(xs) if xs else None
def cell(t, p, f):
    xs = S.get((t, p))
    return med([f(x) for x in xs]) if xs else None
def fmt(v, unit):
    if v is None: return "–"
    if unit == "s": return f"{v:.2f} s"
    if unit == "MiB": return f"{v/1024:.0f} MiB"
    if unit == "%": return f"{v:.0f}%"
    return str(v)
def ratio(a, b):
    return f"{a/b:.2f}" if a is not None and b else "–"
def table(title, f, unit):
    print(f"\n### {title}\n")
    hdr = ["phase"] + tools + [f"cista/{p}" for p in peers if "cista" in tools]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for p in phases:
        vals = {t: cell(t, p, f) for t in tools}
        n = min(len(S.get((t, p), [])) for t in tools)
        row = [f"{p} (n={n})"] + [fmt(vals[t], unit) for t in tools]
        if "cista" in tools:
            row += [ratio(vals["cista"], vals[t]) for t in peers]
        print("| " + " | ".join(row) + " |")
table("Wall time (median)", lambda x: x[0], "s")
table("CPU time, user+sys (median)", lambda x: x[1] + x[2], "s")
table("CPU utilisation, (user+sys)/wall, 200% = both cores (median)",
      lambda x: 100 * (x[1] + x[2]) / x[0] if x[0] > 0 else 0, "%")
table("Peak RSS (median)", lambda x: x[3], "MiB")
if Z:
    whats = []
    for k in Z:
        if k[1] not in whats:
            whats.append(k[1])
    print("\n### Repository size (median, du -sb)\n")
    hdr = ["after"] + tools + [f"cista/{p}" for p in peers if "cista" in tools]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for w in whats:
        vals = {t: med(Z.get((t, w), [])) for t in tools}
        row = [w] + [f"{v/2**20:.1f} MiB" if v is not None else "–" for v in vals.values()]
        if "cista" in tools:
            row += [ratio(vals["cista"], vals[t]) for t in peers]
        print("| " + " | ".join(row) + " |")
PY
}

if [ "${REPORT_ONLY:-0}" = 1 ]; then
    report
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# Peers.
RUSTIC_PID=
if [ "$INSTALL" = 1 ]; then
    missing=()
    have restic || missing+=(restic)
    have borg || missing+=(borgbackup)
    [ -x /usr/bin/time ] || missing+=(time)
    have python3 || missing+=(python3)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if [[ " $TOOLS " == *" rustic "* ]] && ! have rustic; then
        log "installing rustic in the background (cargo install rustic-rs --locked, slow)"
        nice -n 15 cargo install rustic-rs --locked >"$WORK/rustic-install.log" 2>&1 &
        RUSTIC_PID=$!
    fi
fi
PATH=$HOME/.cargo/bin:$PATH

# ---------------------------------------------------------------------------------------------
# cista.
if [ -z "${CISTA:-}" ]; then
    log "building cista (release)"
    (cd "$HERE" && nice -n 10 cargo build --release --locked --bin cista >&2)
    CISTA=$(cd "$HERE" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/cista
fi
[ -x "$CISTA" ] || { echo "no cista binary at $CISTA" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Corpus: crate sources (text, many small files), the Rust toolchain's libraries (binaries,
# a few very large files) and a pg_dump of a pgbench database (one large SQL file).
pg_ok=0
pg_setup() {
    have pg_dump && have pgbench || {
        [ "$INSTALL" = 1 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    } || return 1
    if ! su postgres -c "psql -Atc 'select 1'" >/dev/null 2>&1; then
        local v
        v=$(ls /usr/lib/postgresql | sort -n | tail -1)
        pg_lsclusters -h 2>/dev/null | grep -q . || pg_createcluster "$v" main >/dev/null
        pg_ctlcluster "$v" main start || return 1
    fi
    su postgres -c "psql -Atc \"select 1 from pg_database where datname='cista_bench'\"" | grep -q 1 || {
        su postgres -c "createdb cista_bench" &&
            su postgres -c "nice -n 10 pgbench -i -q -s 20 cista_bench" >/dev/null 2>&1
    } || return 1
    return 0
}
# A pg_dump-like file (COPY blocks of account rows) when PostgreSQL is not available.
fake_dump() { # seed -> stdout, ~100 MB; each seed rewrites ~2% of the rows of seed 0
    awk -v seed="$1" 'BEGIN {
        srand(7); print "-- generated SQL-like dump (PostgreSQL was not available)";
        print "COPY public.accounts (aid, bid, abalance, filler) FROM stdin;";
        for (i = 1; i <= 1200000; i++) {
            bal = int(rand() * 100000); r = rand();
            if (seed > 0 && (i * 7919 + seed * 104729) % 50 == 0) bal = bal + seed * 13;
            printf "%d\t%d\t%d\tnote-%x-%s\n", i, 1 + int(i / 100000), bal, int(r * 1e9),
                substr("lorem ipsum dolor sit amet consectetur adipiscing elit", 1, 10 + i % 40);
        }
        print "\\."; }'
}
dump_db() { su postgres -c "pg_dump cista_bench"; }

if [ ! -f "$WORK/corpus/.done" ]; then
    log "building the corpus in $CORPUS"
    rm -rf "$WORK/corpus" && mkdir -p "$CORPUS" "$NIGHTS"
    budget=$((CORPUS_MB * 1024 * 1024))
    if pg_setup; then pg_ok=1; else log "PostgreSQL setup failed: using a generated SQL-like dump"; fi
    mkdir -p "$CORPUS/pgdump"
    if [ $pg_ok = 1 ]; then dump_db >"$CORPUS/pgdump/bench.sql"; else fake_dump 0 >"$CORPUS/pgdump/bench.sql"; fi
    cp -a "$(rustc --print sysroot)/lib" "$CORPUS/rust-sysroot-lib"
    used=$(du -sb "$CORPUS" | cut -f1)
    # Crate sources, in name order, skipping single crates above 20 MB, until the budget is met.
    mkdir -p "$CORPUS/cargo-registry-src"
    for d in $(ls -d "$HOME"/.cargo/registry/src/*/*/ 2>/dev/null | sort); do
        s=$(du -sb "$d" | cut -f1)
        [ "$s" -gt 20000000 ] && continue
        [ $((used + s)) -gt "$budget" ] && break
        cp -a "$d" "$CORPUS/cargo-registry-src/"
        used=$((used + s))
    done
    # Five nights: pgbench transactions between dumps (or ~2% of the rows rewritten).
    for n in 1 2 3 4 5; do
        if [ $pg_ok = 1 ]; then
            su postgres -c "nice -n 10 pgbench -n -c 2 -t 3000 cista_bench" >/dev/null 2>&1
            dump_db >"$NIGHTS/night$n.sql"
        else
            fake_dump "$n" >"$NIGHTS/night$n.sql"
        fi
    done
    echo "pg_ok=$pg_ok" >"$WORK/corpus/.done"
fi
# The files that the 1% phase changes: every 100th regular file, by path.
find "$CORPUS" -type f | sort | awk 'NR % 100 == 50' >"$WORK/changed.list"
{
    echo "corpus: $(du -sb "$CORPUS" | cut -f1) bytes, $(find "$CORPUS" -type f | wc -l) files, $(find "$CORPUS" -type d | wc -l) dirs"
    du -sb "$CORPUS"/* ; du -sb "$NIGHTS"/*
    echo "1% phase: $(wc -l <"$WORK/changed.list") files changed (64 random bytes overwritten mid-file, one line appended)"
    cat "$WORK/corpus/.done"
} | tee "$WORK/corpus.txt" >&2

STASH=$WORK/stash
mutate() {
    rm -rf "$STASH" && mkdir -p "$STASH"
    local i=0 f s
    while read -r f; do
        cp -p "$f" "$STASH/$i"
        s=$(stat -c %s "$f")
        dd if=/dev/urandom of="$f" bs=64 count=1 seek="$((s / 2))" oflag=seek_bytes conv=notrunc status=none
        echo "changed $(date +%s%N)" >>"$f"
        i=$((i + 1))
    done <"$WORK/changed.list"
}
unmutate() {
    local i=0 f
    while read -r f; do
        cp -p "$STASH/$i" "$f"
        i=$((i + 1))
    done <"$WORK/changed.list"
}
warm() { find "$CORPUS" "$NIGHTS" -type f -print0 | xargs -0 cat >/dev/null; }

# ---------------------------------------------------------------------------------------------
# The tools. Each function takes the verb and the run directory ($R/repo is the repository).
run_cista() {
    local v=$1 R=$2
    case $v in
        init) "$CISTA" -q -r "$R/repo" init ;;
        backup) "$CISTA" -q -r "$R/repo" backup "$CORPUS" ;;
        stdin) "$CISTA" -q -r "$R/repo" backup --stdin --stdin-filename dump.sql ;;
        dump) "$CISTA" -q -r "$R/repo" dump latest /dump.sql ;;
        restore) "$CISTA" -q -r "$R/repo" restore latest --target "$R/restore" ;;
        check) "$CISTA" -q -r "$R/repo" check --read-data ;;
    esac
}
run_restic() {
    local v=$1 R=$2
    export RESTIC_CACHE_DIR=$R/cache
    case $v in
        init) restic -q -r "$R/repo" init --repository-version 2 ;;
        backup) restic -q -r "$R/repo" backup "$CORPUS" ;;
        stdin) restic -q -r "$R/repo" backup --stdin --stdin-filename dump.sql ;;
        dump) restic -q -r "$R/repo" dump latest /dump.sql ;;
        restore) restic -q -r "$R/repo" restore latest --target "$R/restore" ;;
        check) restic -q -r "$R/repo" check --read-data ;;
    esac
}
run_borg() {
    local v=$1 R=$2
    export BORG_BASE_DIR=$R/borgbase
    case $v in
        init) borg init -e repokey "$R/repo" ;;
        backup) borg create --compression zstd,3 "$R/repo::{now:%Y-%m-%dT%H:%M:%S.%f}" "$CORPUS" ;;
        stdin) borg create --compression zstd,3 --stdin-name dump.sql "$R/repo::{now:%Y-%m-%dT%H:%M:%S.%f}" - ;;
        dump) borg extract --stdout "$R/repo::$(borg list --last 1 --short "$R/repo")" dump.sql ;;
        restore)
            mkdir -p "$R/restore"
            (cd "$R/restore" && borg extract "$R/repo::$(borg list --last 1 --short "$R/repo")") ;;
        check) borg check --verify-data "$R/repo" ;;
    esac
}
run_rustic() {
    local v=$1 R=$2
    local g=(--no-progress -r "$R/repo" --cache-dir "$R/cache")
    case $v in
        init) rustic "${g[@]}" init ;;
        backup) rustic "${g[@]}" backup "$CORPUS" ;;
        # Without --force, rustic 0.11 takes the stdin file as unchanged from the parent
        # snapshot, stores the parent's content and never reads standard input.
        stdin) rustic "${g[@]}" backup --force --stdin-filename dump.sql - ;;
        dump) rustic "${g[@]}" dump latest:dump.sql ;;
        restore) rustic "${g[@]}" restore latest "$R/restore" ;;
        check) rustic "${g[@]}" check --read-data ;;
    esac
}

export -f run_cista run_restic run_borg run_rustic
export CISTA CORPUS

# measure TOOL PHASE RUN VERB RUNDIR [STDIN-FILE]: one sample into results.tsv.
measure() {
    local t=$1 p=$2 run=$3 v=$4 R=$5 in=${6:-/dev/null} tf rc=0
    tf=$(mktemp)
    sync # write back the previous phase's dirty pages outside the measurement
    # `time -v` reports the largest RSS of the command and its children.
    # Standard input is a pipe, as from `pg_dump | cista backup --stdin`.
    cat "$in" | nice -n "$NICE" /usr/bin/time -v -o "$tf" bash -c 'run_$0 "$1" "$2"' "$t" "$v" "$R" \
        >"$R/$p.out" 2>&1 || rc=$?
    local wall user sysc rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s}' "$tf")
    user=$(awk -F': ' '/User time/ {print $2}' "$tf")
    sysc=$(awk -F': ' '/System time/ {print $2}' "$tf")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tf")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$p" "$run" "$wall" "$user" "$sysc" "$rss" "$rc" >>"$RESULTS"
    log "$t $p run $run: ${wall}s wall, ${user}s user, ${sysc}s sys, ${rss} KB, exit $rc"
    [ "$rc" = 0 ] || { log "$t $p failed:"; tail -5 "$R/$p.out" >&2; }
    rm -f "$tf"
    return 0 # a failed sample is recorded (exit code column) and left out of the medians
}
size() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(du -sb "$4" | cut -f1)" >>"$SIZES"; }

tool_ready() {
    case $1 in
        cista) return 0 ;;
        rustic)
            if ! have rustic && [ -n "$RUSTIC_PID" ] && [ "$RUSTIC_WAIT" -gt 0 ]; then
                log "waiting up to ${RUSTIC_WAIT}s for the rustic install"
                local end=$((SECONDS + RUSTIC_WAIT))
                while kill -0 "$RUSTIC_PID" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 10; done
            fi
            have rustic ;;
        *) have "$1" ;;
    esac
}

versions() {
    echo "cista: $("$CISTA" --version) (${CISTA_REV:-$(cd "$HERE" && git rev-parse --short HEAD 2>/dev/null || echo '?')})"
    have restic && echo "restic: $(restic version)"
    have borg && echo "borg: $(borg --version)"
    have rustic && echo "rustic: $(rustic --version)"
    echo "kernel: $(uname -r); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-); nproc: $(nproc); RAM: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
}

# ---------------------------------------------------------------------------------------------
if [ "${APPEND:-0}" != 1 ]; then
    : >"$RESULTS"
    : >"$SIZES"
    rm -f "$WORK/skipped.txt"
fi
for t in $TOOLS; do
    if ! tool_ready "$t"; then
        log "SKIPPING $t: not installed (see $WORK/rustic-install.log)"
        echo "$t skipped: not installed" >>"$WORK/skipped.txt"
        continue
    fi
    for run in $(seq 1 "$RUNS"); do
        R=$WORK/runs/$t-$run
        rm -rf "$R" && mkdir -p "$R"
        run_$t init "$R" >"$R/init.out" 2>&1
        warm
        measure "$t" backup_initial "$run" backup "$R"
        size "$t" initial_backup "$run" "$R/repo"
        measure "$t" backup_unchanged "$run" backup "$R"
        mutate
        measure "$t" backup_1pct "$run" backup "$R"
        size "$t" after_1pct_backup "$run" "$R/repo"
        measure "$t" restore "$run" restore "$R"
        if [ "$run" = 1 ]; then
            restored=$(find "$R/restore" -type d -path "*$CORPUS" | head -1)
            if diff -r "$CORPUS" "$restored" >/dev/null; then log "$t restore matches the source"; else
                log "$t RESTORE DIFFERS from the source"; echo "$t restore differs" >>"$WORK/skipped.txt"; fi
        fi
        unmutate
        rm -rf "$R/restore"
        measure "$t" check_read_data "$run" check "$R"
        rm -rf "$R"
    done
    for run in $(seq 1 "$NIGHT_RUNS"); do
        R=$WORK/runs/$t-nights-$run
        rm -rf "$R" && mkdir -p "$R"
        run_$t init "$R" >"$R/init.out" 2>&1
        warm
        start=$(date +%s.%N)
        for n in 1 2 3 4 5; do
            measure "$t" "night$n" "$run" stdin "$R" "$NIGHTS/night$n.sql"
        done
        size "$t" five_nightly_dumps "$run" "$R/repo"
        if [ "$run" = 1 ]; then
            if run_$t dump "$R" 2>/dev/null | cmp -s - "$NIGHTS/night5.sql"; then log "$t: the last night's dump reads back intact"; else
                log "$t: THE LAST NIGHT'S DUMP DIFFERS from what was backed up"; echo "$t nightly dump differs" >>"$WORK/skipped.txt"; fi
        fi
        rm -rf "$R"
    done
done

{
    echo "## Versions"
    versions
    echo
    echo "## Corpus"
    cat "$WORK/corpus.txt"
    [ -f "$WORK/skipped.txt" ] && { echo; echo "## Skipped / failed"; cat "$WORK/skipped.txt"; }
    echo
    echo "## Results (runs: $RUNS file-tree, $NIGHT_RUNS nightly)"
    report
} | tee "$WORK/report.md"
