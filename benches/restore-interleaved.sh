#!/usr/bin/env bash
# Restore timings with less noise than compare.sh's: one repository per tool, restored ROUNDS
# times with the tools interleaved (so drift in the machine's load or the file system's state hits
# every tool alike), once to TARGET_DISK (ext4 here) and once to a tmpfs (no file-system
# allocator in the way). Run benches/compare.sh first: it builds the corpus and installs the peers.
#
#   bash benches/restore-interleaved.sh
#
# Environment: WORK (as for compare.sh), CISTA (a cista binary), ROUNDS=3,
# TOOLS="cista restic borg rustic", TARGET_DISK=$WORK/rr, TARGET_TMPFS=/dev/shm/cista-rr,
# KEEP=1: keep every disk restore until the end (ROUNDS × tools × 1 GB) instead of deleting each
# one after it is measured. On ext4 without a journal (this machine's root file system) the
# inode allocator skips inodes deleted less than 60 s ago (360 s while their inode-table block is
# dirty; `recently_deleted()` in fs/ext4/ialloc.c), re-checking each of them for every new file:
# restoring 31,000 files soon after deleting 31,000 costs any tool ~30 s of system time, and
# waiting 65 s after `sync` was not enough here. KEEP=1 measures the tools, KEEP=0 that case.
set -euo pipefail
WORK=${WORK:-/tmp/cista-compare}
ROUNDS=${ROUNDS:-3}
TOOLS=${TOOLS:-cista restic borg rustic}
TARGET_DISK=${TARGET_DISK:-$WORK/rr}
TARGET_TMPFS=${TARGET_TMPFS:-/dev/shm/cista-rr}
CORPUS=$WORK/corpus/data
: "${CISTA:?set CISTA to a cista binary}"
P=compare-password
export CISTA_PASSWORD=$P RESTIC_PASSWORD=$P BORG_PASSPHRASE=$P RUSTIC_PASSWORD=$P LC_ALL=C
PATH=$HOME/.cargo/bin:$PATH
OUT=$WORK/restore-interleaved.tsv
R=$WORK/rr-repos
rm -rf "$R" && mkdir -p "$R"

restore() { # tool target
    local t=$1 d=$2
    case $t in
        cista) "$CISTA" -q -r "$R/cista" restore latest --target "$d" ;;
        restic) RESTIC_CACHE_DIR=$R/restic-cache restic -q -r "$R/restic" restore latest --target "$d" ;;
        borg) mkdir -p "$d" && cd "$d" && BORG_BASE_DIR=$R/borgbase borg extract "$R/borg::a" ;;
        rustic) rustic --no-progress -r "$R/rustic" --cache-dir "$R/rustic-cache" restore latest "$d" ;;
    esac
}

for t in $TOOLS; do
    case $t in
        cista) "$CISTA" -q -r "$R/cista" init && "$CISTA" -q -r "$R/cista" backup "$CORPUS" ;;
        restic) export RESTIC_CACHE_DIR=$R/restic-cache
            restic -q -r "$R/restic" init --repository-version 2 && restic -q -r "$R/restic" backup "$CORPUS" ;;
        borg) export BORG_BASE_DIR=$R/borgbase
            borg init -e repokey "$R/borg" && borg create --compression zstd,3 "$R/borg::a" "$CORPUS" ;;
        rustic) rustic --no-progress -r "$R/rustic" --cache-dir "$R/rustic-cache" init &&
            rustic --no-progress -r "$R/rustic" --cache-dir "$R/rustic-cache" backup "$CORPUS" ;;
    esac >/dev/null 2>&1
done
export -f restore
export CISTA R

: >"$OUT"
for round in $(seq 1 "$ROUNDS"); do
    for kind in disk tmpfs; do
        base=$TARGET_DISK
        [ $kind = tmpfs ] && base=$TARGET_TMPFS
        for t in $TOOLS; do
            d=$base/$t
            [ "${KEEP:-0}" = 1 ] && [ $kind = disk ] && d=$d-$round
            rm -rf "$d"
            sync
            tf=$(mktemp)
            /usr/bin/time -f '%e\t%U\t%S\t%M' -o "$tf" bash -c 'restore "$0" "$1"' "$t" "$d" >/dev/null 2>&1
            printf '%s\t%s\t%s\t%s\n' "$t" "$kind" "$round" "$(cat "$tf")" | tee -a "$OUT"
            rm -f "$tf"
            [ "${KEEP:-0}" = 1 ] && [ $kind = disk ] || rm -rf "$d"
        done
    done
done
rm -rf "$R" "$TARGET_TMPFS" "$TARGET_DISK"

python3 - "$OUT" "$TOOLS" <<'PY'
import sys, statistics, collections
S = collections.defaultdict(list)
for l in open(sys.argv[1]):
    t, kind, rnd, wall, user, sysc, rss = l.split("\t")
    S[(t, kind)].append((float(wall), float(user), float(sysc)))
tools = sys.argv[2].split()
print("| restore to | " + " | ".join(f"{t} wall (user+sys)" for t in tools) + " |")
print("|---|" + "---|" * len(tools))
for kind in ("disk", "tmpfs"):
    cells = []
    for t in tools:
        xs = S[(t, kind)]
        w = statistics.median(x[0] for x in xs)
        c = statistics.median(x[1] + x[2] for x in xs)
        cells.append(f"{w:.2f} s ({c:.2f} s)")
    print(f"| {kind} (n={len(S[(tools[0], kind)])}) | " + " | ".join(cells) + " |")
PY
