#!/usr/bin/env bash
# Reproduce the database behind docs/findings.md (2 CPU cores, no GPU), resumably.
#
#   scripts/run_studies.sh                      # every study below, in order
#   STUDIES="conv_kinds inflation" scripts/run_studies.sh
#   COMMIT=1 scripts/run_studies.sh             # also git-commit the .xz after each study
#   then: make findings
#
# Every study (and each of its variants, e.g. placement_crossover@scale=2) goes into one SQLite
# database, docs/findings/findings.db. After each study the database is checkpointed and
# compressed to docs/findings/findings.db.xz (the file that is committed: *.db is ignored), and
# its wall time appended to docs/findings/compute.tsv. On a fresh checkout (or a new machine)
# the .xz is unpacked first, and `python -m search.run` resumes every study where it stopped:
# finished trials are not run again. Estimated cost per study (2 quiet cores): see the comment
# at the top of each preset, search/conf/study/<name>.yaml, and docs/calibration.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-docs/findings}
DB_FILE=$OUT/findings.db
DB=sqlite:///$DB_FILE
LOG=$OUT/compute.tsv
STUDIES=${STUDIES:-"placement_crossover bottom_vs_top_data conv_kinds temporal_extent inflation factorization"}
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}

mkdir -p "$OUT"
if [[ ! -f $DB_FILE && -f $DB_FILE.xz ]]; then
  echo "unpacking $DB_FILE.xz (resuming the studies stored in it)"
  xz -dk "$DB_FILE.xz"
fi
[[ -f $LOG ]] || printf 'study\tstarted_utc\twall_s\texit\tgit_sha\thost_cpus\tload_avg_1m\n' > "$LOG"

pack() {  # fold the WAL into the database file, then compress it next to it
  "$PY" - "$DB_FILE" <<'EOF'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
EOF
  xz -T1 -6 -kf "$DB_FILE"
}

for study in $STUDIES; do
  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  t0=$(date +%s)
  echo "== $study ($started)"
  set +e
  "$PY" -m search.run "study=$study" "storage=$DB"
  code=$?
  set -e
  wall=$(( $(date +%s) - t0 ))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$study" "$started" "$wall" "$code" \
    "$(git rev-parse --short=12 HEAD 2>/dev/null || echo -)" "$(nproc)" \
    "$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo -)" >> "$LOG"
  pack
  if [[ ${COMMIT:-0} == 1 ]]; then
    git add "$DB_FILE.xz" "$LOG"
    git commit -q -m "findings: $study (exit $code, ${wall} s)" -- "$DB_FILE.xz" "$LOG" || true
  fi
  # 2: bad input, 130: interrupted -- stop here (rerun to resume); 1 (a trial failed): go on,
  # the summary names it and a rerun retries it.
  if [[ $code == 2 || $code == 130 ]]; then
    echo "stopped at $study (exit $code); rerun to resume" >&2
    exit "$code"
  fi
done
echo "done: $DB_FILE (+ .xz); wall times in $LOG. Next: make findings"
