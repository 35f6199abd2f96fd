#!/usr/bin/env bash
# Reelsmith's orchestration overhead beside LangGraph's on the same pipeline and the same disk
# (scripts/peer/langgraph_overhead.py). The two are measured in turns, three rounds, so that
# whatever else the machine is doing weighs on both alike.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/peer-venv
req=scripts/peer/requirements.txt

# A copy of the pins marks a finished install: a half-made venv, or new pins, install again.
if ! cmp -s "$req" "$venv/requirements.installed"; then
  log=$(mktemp)
  if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"; } >"$log" 2>&1; then
    reason=$(grep -m1 -E 'ERROR|rror:|not available' "$log" || tail -n1 "$log")
    echo "bench-peer: LangGraph could not be installed: ${reason:0:240} (full log: $log)" >&2
    exit 1
  fi
  cp "$req" "$venv/requirements.installed"
  rm -f "$log"
fi

# value NAME OUTPUT: the figure of the line `NAME: <figure> <unit>`, or fail naming it.
value() {
  awk -v k="$1:" '$1 == k { print $2; found = 1 } END { exit !found }' <<<"$2" || {
    echo "bench-peer: no '$1' line in:" >&2; echo "$2" >&2; exit 1; }
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# The issue's goals, on the unrounded ratio: goal A B MAX says whether A / B <= MAX.
goal() { awk -v a="$1" -v b="$2" -v max="$3" 'BEGIN { print (a / b <= max ? "met" : "missed") }'; }

rows=() goals=()
for round in 1 2 3; do
  rs=$(./target/release/reelsmith bench --quick --only overhead)
  lg=$("$venv/bin/python" scripts/peer/langgraph_overhead.py --quick)
  # What each side writes per run and LangGraph's versions and pragmas, once.
  if [ "$round" = 1 ]; then
    echo "reelsmith_sqlite_commits_per_run: $(value sqlite_commits_per_run "$rs") commits"
    grep -vE '_us:' <<<"$lg"
    echo
  fi
  r=$(value run_overhead_us "$rs")
  f=$(value langgraph_fanout_default_us "$lg")
  n=$(value langgraph_node_per_phase_normal_us "$lg")
  rf=$(ratio "$r" "$f") rn=$(ratio "$r" "$n")
  rows+=("| $round | $r | $f | $n | $rf | $rn |")
  goals+=("round $round: reelsmith / fan-out default = $rf (goal <= 0.10): $(goal "$r" "$f" 0.10); reelsmith / node-per-phase NORMAL = $rn (goal <= 0.50): $(goal "$r" "$n" 0.50)")
done

echo "| round | reelsmith run_overhead_us | langgraph fan-out default (us) | langgraph node-per-phase NORMAL (us) | reelsmith / fan-out | reelsmith / node-per-phase |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
printf '%s\n' "${goals[@]}"
