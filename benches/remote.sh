#!/usr/bin/env bash
# cista and restic against an S3-compatible object store at internet latency: moto's S3 server on
# loopback behind benches/latency_proxy.py, which delays every HTTP request by DELAY ms before
# forwarding it and counts the requests. Not part of CI. Needs python3 with moto
# (`pip install 'moto[server]'`), restic and a cista binary; nothing else, no network beyond
# loopback.
#
#   bash benches/remote.sh                                # 10 and 50 ms, 3 runs each
#   RUNS=1 DELAYS=10 bash benches/remote.sh               # a quick look (~5 min)
#   RUNS=1 DELAYS=50 FILES=2000 DIRS=400 bash benches/remote.sh
#   REPORT_ONLY=1 bash benches/remote.sh                  # reprint the tables from $WORK/results.tsv
#
# Environment (all optional):
#   WORK=/tmp/cista-remote     tree, caches, restores, results
#   DELAYS="10 50"             milliseconds added before each request (one proxy per delay)
#   RUNS=3                     runs per delay and tool (fresh bucket each run)
#   FILES=10000 DIRS=2000      the tree: FILES small files (200 B-4 KiB, deterministic content)
#                              spread over DIRS directories (in groups of 50)
#   BIG_FILES=0 BIG_MB=4       plus this many files of BIG_MB MiB each (deterministic, incompressible)
#   TOOLS="cista restic"
#   CISTA=path                 a cista binary; default: target/release/cista of this checkout
#                              (`cargo build --release --locked` if missing)
#   CISTA_REV=...              the revision to print for that binary
#   NICE=0                     niceness for the measured commands
#   APPEND=1                   keep earlier results in results.tsv
#   PROXY_LOG=1                every request's line in $WORK/requests.log, under a "# tool delay
#                              phase run" line per phase
#   RESTORE_ROOT=/dev/shm/...  where restore_cold writes (default: a directory on /dev/shm when it
#                              exists, else $WORK/runs). The bench measures the store, not the
#                              target file system: on this machine's ext4, creating 10,000 files
#                              soon after mass deletes costs 1-4 s of kernel time (ext4_create ->
#                              recently_deleted) for either tool, varying run to run, which
#                              drowned the difference between the tools. RESTORE_ROOT=$WORK/runs
#                              measures on disk again.
#
# Per delay, run and tool (tools interleaved within a run), in a fresh bucket:
#   init (not timed)
#   backup_initial     first backup of the tree
#   backup_second      second backup on the same host (warm cache), after one file changed
#   ls_cold            `ls latest`, cache directory wiped first
#   ls_warm            `ls latest` again
#   incr_cold          backup after one more file changed, cache wiped first
#   incr_warm          backup after one more file changed
#   restore_cold       `restore latest`, cache wiped first (run 1: compared with the tree, diff -r)
#   check_read_data    check --read-data (restic's check uses a fresh temporary cache by default)
#   forget_prune       forget --keep-last 1 --prune
# "Cache wiped" is cista's --cache-dir and restic's --cache-dir, both under $WORK. Each phase
# runs under `/usr/bin/time -v`; the proxy's counters are reset before it and read after it, so
# every row of results.tsv carries the phase's wall time, CPU, peak RSS, exit code and its
# requests by kind (GET, range GET, LIST, PUT, POST, HEAD, DELETE) and bytes each way. moto
# answers every request with `Connection: close`, so each request is its own TCP connection on
# loopback; the delay stands for one round trip per request, nothing for connection setup.
# The report prints medians and cista/restic ratios per delay.
set -euo pipefail
{ # the whole script is read before it runs, so editing it during a run changes nothing

HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/cista-remote}
DELAYS=${DELAYS:-10 50}
RUNS=${RUNS:-3}
FILES=${FILES:-10000}
DIRS=${DIRS:-2000}
BIG_FILES=${BIG_FILES:-0}
BIG_MB=${BIG_MB:-4}
TOOLS=${TOOLS:-cista restic}
NICE=${NICE:-0}
RESULTS=$WORK/results.tsv
if [ -z "${RESTORE_ROOT:-}" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then RESTORE_ROOT=/dev/shm/cista-remote-restore.$$; else RESTORE_ROOT=$WORK/runs; fi
fi
TREE=$WORK/tree/data
PASSWORD=remote-bench-password
export CISTA_PASSWORD=$PASSWORD RESTIC_PASSWORD=$PASSWORD
export LC_ALL=C
# Loopback only: explicit credentials and region, no instance metadata, no HTTP proxies.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_ALLOW_HTTP=true
export AWS_METADATA_ENDPOINT=http://127.0.0.1:9 AWS_EC2_METADATA_DISABLED=true
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONTAINER_CREDENTIALS_FULL_URI
unset AWS_CONTAINER_CREDENTIALS_RELATIVE_URI http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

log() { printf '[remote %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

mkdir -p "$WORK" "$RESTORE_ROOT"
# shellcheck disable=SC2317
report() { python3 - "$RESULTS" "$TOOLS" <<'PY'
import sys, statistics, collections
res, tools = sys.argv[1], sys.argv[2].split()
KINDS = ["GET", "range GET", "LIST", "PUT", "POST", "HEAD", "DELETE", "other"]
COLS = ["tool", "delay", "phase", "run", "wall", "user", "sys", "rss", "rc", "requests"] + \
       KINDS + ["bytes_up", "bytes_down"]
S = collections.defaultdict(list)      # (delay, tool, phase) -> [row]
failed = []
for line in open(res):
    f = line.rstrip("\n").split("\t")
    if len(f) != len(COLS):
        continue
    r = dict(zip(COLS, f))
    if r["rc"] != "0":
        failed.append(f"{r['tool']} {r['phase']} at {r['delay']} ms, run {r['run']}: exit {r['rc']}")
        continue
    for k in COLS[4:]:
        r[k] = float(r[k])
    S[(int(r["delay"]), r["tool"], r["phase"])].append(r)
order = ["backup_initial", "backup_second", "ls_cold", "ls_warm", "incr_cold", "incr_warm",
         "restore_cold", "check_read_data", "forget_prune"]
delays = sorted({k[0] for k in S})
tools = [t for t in tools if any(k[1] == t for k in S)]
med = lambda xs: statistics.median(xs) if xs else None
def m(d, t, p, k):
    xs = S.get((d, t, p))
    return med([x[k] for x in xs]) if xs else None
def secs(v): return "–" if v is None else f"{v:.2f} s"
def num(v): return "–" if v is None else f"{v:.0f}"
def mb(v): return "–" if v is None else f"{v/2**20:.1f}"
def ratio(a, b): return f"{a/b:.2f}" if a is not None and b else "–"
for d in delays:
    phases = sorted({k[2] for k in S if k[0] == d}, key=lambda p: order.index(p) if p in order else 99)
    n = lambda p: min(len(S.get((d, t, p), [])) for t in tools)
    print(f"\n### {d} ms per request: wall time and requests (median)\n")
    hdr = ["phase"] + tools
    if "cista" in tools and "restic" in tools:
        hdr += ["cista/restic", "≤ 0.5×?"]
    hdr += [f"{t} requests" for t in tools]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for p in phases:
        row = [f"{p} (n={n(p)})"] + [secs(m(d, t, p, "wall")) for t in tools]
        if "cista" in tools and "restic" in tools:
            c, r = m(d, "cista", p, "wall"), m(d, "restic", p, "wall")
            row += [ratio(c, r), ("yes" if c <= 0.5 * r else "no") if c is not None and r else "–"]
        row += [num(m(d, t, p, "requests")) for t in tools]
        print("| " + " | ".join(row) + " |")
    print(f"\n### {d} ms per request: requests by kind and bytes (median)\n")
    hdr = ["phase", "tool", "total"] + KINDS[:-1] + ["MiB up", "MiB down", "requests × delay"]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for p in phases:
        for t in tools:
            if (d, t, p) not in S:
                continue
            tot, w = m(d, t, p, "requests"), m(d, t, p, "wall")
            row = [p, t, num(tot)] + [num(m(d, t, p, k)) for k in KINDS[:-1]]
            row += [mb(m(d, t, p, "bytes_up")), mb(m(d, t, p, "bytes_down")),
                    secs(tot * d / 1000) if tot is not None else "–"]
            print("| " + " | ".join(row) + " |")
    print(f"\n### {d} ms per request: CPU (user+sys) and peak RSS (median)\n")
    hdr = ["phase"] + [f"{t} CPU" for t in tools] + [f"{t} RSS" for t in tools]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for p in phases:
        row = [p]
        for t in tools:
            xs = S.get((d, t, p))
            row.append(secs(med([x["user"] + x["sys"] for x in xs])) if xs else "–")
        row += [f"{m(d, t, p, 'rss')/1024:.0f} MiB" if (d, t, p) in S else "–" for t in tools]
        print("| " + " | ".join(row) + " |")
if failed:
    print("\n### Failed samples (left out of the medians)\n")
    for f in failed:
        print(f"- {f}")
PY
}

if [ "${REPORT_ONLY:-0}" = 1 ]; then
    report
    exit 0
fi

for c in python3 /usr/bin/time; do
    command -v "$c" >/dev/null || { echo "$c not found" >&2; exit 1; }
done
python3 -c 'import moto.server' 2>/dev/null || { echo "moto not found: pip install 'moto[server]'" >&2; exit 1; }
if [[ " $TOOLS " == *" restic "* ]]; then
    command -v restic >/dev/null || { echo "restic not found" >&2; exit 1; }
fi

# ---------------------------------------------------------------------------------------------
# cista.
if [ -z "${CISTA:-}" ]; then
    CISTA=$HERE/target/release/cista
    if [ ! -x "$CISTA" ]; then
        log "building cista (release)"
        (cd "$HERE" && nice -n 10 cargo build --release --locked --bin cista >&2)
    fi
fi
[ -x "$CISTA" ] || { echo "no cista binary at $CISTA" >&2; exit 1; }
CISTA_REV=${CISTA_REV:-$(cd "$HERE" && git rev-parse --short HEAD 2>/dev/null || echo '?')}

# ---------------------------------------------------------------------------------------------
# Processes: moto for the whole bench, one proxy per delay. The trap stops whatever is running.
MOTO_PID=
PROXY_PID=
stop_proxy() {
    if [ -n "$PROXY_PID" ]; then
        kill "$PROXY_PID" 2>/dev/null || true
        wait "$PROXY_PID" 2>/dev/null || true
        PROXY_PID=
    fi
}
# shellcheck disable=SC2317
cleanup() {
    stop_proxy
    [ "$(type -t unstash)" = function ] && unstash
    if [ -n "$MOTO_PID" ]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
        MOTO_PID=
    fi
    case $RESTORE_ROOT in /dev/shm/cista-remote-restore.*) rm -rf "$RESTORE_ROOT" ;; esac
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # port seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

MOTO_PORT=$(free_port)
log "starting moto on 127.0.0.1:$MOTO_PORT"
python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
wait_port "$MOTO_PORT" 30 || { echo "moto did not start (see $WORK/moto.log)" >&2; exit 1; }

COUNTS=$WORK/proxy-counts.json
PROXY_PORT=
start_proxy() { # delay_ms
    stop_proxy
    rm -f "$WORK/proxy.port" "$COUNTS"
    local plog=()
    [ "${PROXY_LOG:-0}" != 1 ] || plog=(--log "$WORK/requests.log")
    python3 "$HERE/benches/latency_proxy.py" --listen 127.0.0.1:0 --upstream "127.0.0.1:$MOTO_PORT" \
        --delay-ms "$1" --counts "$COUNTS" --ready "$WORK/proxy.port" \
        "${plog[@]}" 2>>"$WORK/proxy.log" &
    PROXY_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        [ -s "$WORK/proxy.port" ] && break
        sleep 0.1
    done
    PROXY_PORT=$(cat "$WORK/proxy.port" 2>/dev/null) || { echo "the proxy did not start (see $WORK/proxy.log)" >&2; exit 1; }
    log "proxy on 127.0.0.1:$PROXY_PORT, $1 ms per request"
}
seq_of() { sed -n 's/.*"seq": \([0-9]*\).*/\1/p' "$COUNTS" 2>/dev/null || true; }
# proxy_signal USR1|USR2: the proxy writes $COUNTS (USR2 after resetting); wait for the new file.
proxy_signal() {
    local old new i
    old=$(seq_of)
    kill "-$1" "$PROXY_PID"
    for ((i = 0; i < 200; i++)); do
        new=$(seq_of)
        [ -n "$new" ] && [ "$new" != "$old" ] && return 0
        sleep 0.025
    done
    echo "the proxy did not answer SIG$1" >&2
    exit 1
}
# The counts as TSV columns: total, GET, range GET, LIST, PUT, POST, HEAD, DELETE, other, up, down.
counts_tsv() {
    python3 - "$COUNTS" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
r = d["requests"]
kinds = ["GET", "range GET", "LIST", "PUT", "POST", "HEAD", "DELETE", "other"]
print("\t".join(str(x) for x in [d["requests_total"]] + [r.get(k, 0) for k in kinds] +
                [d["bytes_up"], d["bytes_down"]]))
PY
}

make_bucket() { # name: created directly at moto (not through the proxy, not counted)
    python3 - "$MOTO_PORT" "$1" <<'PY'
import sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/{sys.argv[2]}", method="PUT")
with urllib.request.urlopen(req, timeout=30) as r:
    assert r.status == 200, r.status
PY
}

# ---------------------------------------------------------------------------------------------
# The tree: deterministic (same bytes every time for the same FILES, DIRS, BIG_FILES, BIG_MB).
gen_tree() {
    python3 - "$TREE" "$FILES" "$DIRS" "$BIG_FILES" "$BIG_MB" <<'PY'
import os, random, sys
root, files, dirs, big, big_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi".split()
def d(i): return os.path.join(root, f"g{i // 50:03d}", f"d{i:05d}")
for i in range(dirs):
    os.makedirs(d(i), exist_ok=True)
for i in range(files):
    rnd = random.Random(i)
    size = rnd.randint(200, 4096)
    # Half text (compressible), half random bytes: small files of mixed kinds.
    text = " ".join(rnd.choice(words) for _ in range(size // 12)).encode()
    data = text[: size // 2] + rnd.randbytes(size - size // 2) if i % 2 else text + b"\n"
    with open(os.path.join(d(i % dirs), f"f{i:06d}.txt"), "wb") as f:
        f.write(data)
for i in range(big):
    rnd = random.Random(1_000_000 + i)
    os.makedirs(os.path.join(root, "big"), exist_ok=True)
    with open(os.path.join(root, "big", f"big{i:03d}.bin"), "wb") as f:
        for _ in range(big_mb):
            f.write(rnd.randbytes(1 << 20))
PY
}
TREE_KEY="files=$FILES dirs=$DIRS big=$BIG_FILES x ${BIG_MB} MiB"
if [ "$(cat "$WORK/tree/.done" 2>/dev/null)" != "$TREE_KEY" ]; then
    log "generating the tree in $TREE ($TREE_KEY)"
    rm -rf "$WORK/tree" && mkdir -p "$TREE"
    gen_tree
    echo "$TREE_KEY" >"$WORK/tree/.done"
fi
TREE_DESC="$(find "$TREE" -type f | wc -l) files, $(find "$TREE" -type d | wc -l) directories, $(du -sb "$TREE" | cut -f1) bytes"
log "tree: $TREE_DESC"
# The files the changing phases touch (one each), by path order; stashed and put back per run.
mapfile -t CHANGED < <(find "$TREE" -type f -name 'f*' | sort | awk -v n="$FILES" 'NR == int(n / 4) || NR == int(n / 2) || NR == int(3 * n / 4)')
[ "${#CHANGED[@]}" = 3 ] || { echo "tree too small (FILES >= 4)" >&2; exit 1; }
STASH=$WORK/stash
stash() {
    rm -rf "$STASH" && mkdir -p "$STASH"
    for i in 0 1 2; do cp -p "${CHANGED[$i]}" "$STASH/$i"; done
    touch "$STASH/.complete"
}
unstash() { # also after an interrupted run (from the trap, or at the next start)
    if [ -f "$STASH/.complete" ]; then
        for i in 0 1 2; do cp -p "$STASH/$i" "${CHANGED[$i]}"; done
        rm -rf "$STASH"
    fi
}
unstash
change() { echo "changed $(date +%s%N)" >>"${CHANGED[$1]}"; }

# ---------------------------------------------------------------------------------------------
# The tools. Each function takes the verb and the run directory ($R/cache is the cache, the
# repository is in bucket $BUCKET).
# shellcheck disable=SC2317 # called as run_$t
run_cista() {
    local v=$1 R=$2
    local g=(-q -r "s3://$BUCKET/repo" --cache-dir "$R/cache")
    case $v in
        init) "$CISTA" "${g[@]}" init ;;
        backup) "$CISTA" "${g[@]}" backup "$TREE" ;;
        ls) "$CISTA" "${g[@]}" ls latest ;;
        restore) "$CISTA" "${g[@]}" restore latest --target "$RESTORE_ROOT/$(basename "$R")" ;;
        check) "$CISTA" "${g[@]}" check --read-data ;;
        forget) "$CISTA" "${g[@]}" forget --keep-last 1 --prune ;;
    esac
}
# shellcheck disable=SC2317 # called as run_$t
run_restic() {
    local v=$1 R=$2
    local g=(-q -r "s3:http://127.0.0.1:$PROXY_PORT/$BUCKET/repo" --cache-dir "$R/cache")
    case $v in
        init) restic "${g[@]}" init --repository-version 2 ;;
        backup) restic "${g[@]}" backup "$TREE" ;;
        ls) restic "${g[@]}" ls latest ;;
        restore) restic "${g[@]}" restore latest --target "$RESTORE_ROOT/$(basename "$R")" ;;
        check) restic "${g[@]}" check --read-data ;;
        forget) restic "${g[@]}" forget --keep-last 1 --prune ;;
    esac
}
export -f run_cista run_restic
export CISTA TREE RESTORE_ROOT

# measure TOOL DELAY PHASE RUN VERB RUNDIR: one row of results.tsv.
measure() {
    local t=$1 d=$2 p=$3 run=$4 v=$5 R=$6 tf rc=0
    tf=$(mktemp)
    sync # write back the previous phase's dirty pages outside the measurement
    [ "${PROXY_LOG:-0}" != 1 ] || echo "# $t ${d}ms $p run $run" >>"$WORK/requests.log"
    proxy_signal USR2
    # shellcheck disable=SC2016 # run_$0 expands in the inner shell
    nice -n "$NICE" /usr/bin/time -v -o "$tf" bash -c 'run_$0 "$1" "$2"' "$t" "$v" "$R" \
        >"$R/$p.out" 2>&1 </dev/null || rc=$?
    proxy_signal USR1
    local wall user sysc rss counts
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s}' "$tf")
    user=$(awk -F': ' '/User time/ {print $2}' "$tf")
    sysc=$(awk -F': ' '/System time/ {print $2}' "$tf")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tf")
    counts=$(counts_tsv)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$d" "$p" "$run" "$wall" "$user" "$sysc" "$rss" "$rc" "$counts" >>"$RESULTS"
    log "$t ${d}ms $p run $run: ${wall}s wall, ${user}s user, ${sysc}s sys, ${rss} KB, exit $rc, requests $(cut -f1 <<<"$counts")"
    [ "$rc" = 0 ] || { log "$t $p failed:"; tail -5 "$R/$p.out" >&2; }
    rm -f "$tf"
    return 0 # a failed sample is recorded (exit code column) and left out of the medians
}

versions() {
    echo "cista: $("$CISTA" --version) ($CISTA_REV)"
    command -v restic >/dev/null && echo "restic: $(restic version)"
    echo "moto: $(python3 -c 'import moto; print(moto.__version__)'); python: $(python3 --version 2>&1)"
    echo "restore target: $RESTORE_ROOT ($(df -T "$RESTORE_ROOT" 2>/dev/null | awk 'NR == 2 { print $2 }'))"
    echo "kernel: $(uname -r); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-); nproc: $(nproc); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# ---------------------------------------------------------------------------------------------
[ "${APPEND:-0}" = 1 ] || { : >"$RESULTS"; rm -f "$WORK/requests.log"; }
: >"$WORK/failed.txt"
STARTED=$(date -u '+%Y-%m-%d %H:%M')
for d in $DELAYS; do
    start_proxy "$d"
    for run in $(seq 1 "$RUNS"); do
        for t in $TOOLS; do
            R=$WORK/runs/$t-$d-$run
            rm -rf "$R" && mkdir -p "$R"
            BUCKET=$(printf 'bench-%s-%s-%s-%s' "$t" "$d" "$run" "$$" | tr -c 'a-z0-9-' '-')
            export BUCKET PROXY_PORT
            make_bucket "$BUCKET"
            # cista talks to the proxy as its S3 endpoint.
            export AWS_ENDPOINT_URL=http://127.0.0.1:$PROXY_PORT
            stash
            run_"$t" init "$R" >"$R/init.out" 2>&1 || { log "$t init failed:"; tail -5 "$R/init.out" >&2; exit 1; }
            measure "$t" "$d" backup_initial "$run" backup "$R"
            change 0
            measure "$t" "$d" backup_second "$run" backup "$R"
            rm -rf "$R/cache"
            measure "$t" "$d" ls_cold "$run" ls "$R"
            measure "$t" "$d" ls_warm "$run" ls "$R"
            change 1
            rm -rf "$R/cache"
            measure "$t" "$d" incr_cold "$run" backup "$R"
            change 2
            measure "$t" "$d" incr_warm "$run" backup "$R"
            rm -rf "$R/cache"
            measure "$t" "$d" restore_cold "$run" restore "$R"
            if [ "$run" = 1 ]; then
                restored=$(find "$RESTORE_ROOT/$(basename "$R")" -type d -path "*$TREE" | head -1)
                if [ -n "$restored" ] && diff -r "$TREE" "$restored" >/dev/null; then
                    log "$t ${d}ms: restore matches the tree"
                else
                    log "$t ${d}ms: RESTORE DIFFERS from the tree"
                    echo "$t ${d}ms run $run: restore differs from the tree" >>"$WORK/failed.txt"
                fi
            fi
            rm -rf "${RESTORE_ROOT:?}/$(basename "$R")"
            measure "$t" "$d" check_read_data "$run" check "$R"
            measure "$t" "$d" forget_prune "$run" forget "$R"
            unstash
            rm -rf "$R"
        done
    done
done
stop_proxy

{
    echo "## Versions"
    versions
    echo
    echo "## Setup"
    echo "started $STARTED UTC, finished $(date -u '+%H:%M') UTC; delays: $DELAYS ms; runs: $RUNS; tools: $TOOLS"
    echo "tree: $TREE_DESC ($TREE_KEY)"
    [ -s "$WORK/failed.txt" ] && { echo; echo "## Failed"; cat "$WORK/failed.txt"; }
    echo
    echo "## Results"
    report
} | tee "$WORK/report.md"
exit 0
}
