#!/bin/bash
# Run `scratchopt parity --quick` N times in a pseudo-terminal (util-linux `script`), as a user
# at a terminal would, with the live progress display drawn, and print each run's summary line.
# A progress display once leaked into a callback row's captured output there (issue 12).
#   bash benchmarks/parity_in_a_terminal.sh [N] [SOURCE_TREE]   (default: 5, this checkout)
set -u
runs=${1:-5}
tree=${2:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$tree"
for i in $(seq 1 "$runs"); do
  log=$(mktemp)
  start=$(date +%s)
  script -qec "python -m scratchopt parity --quick" "$log" > /dev/null 2>&1
  rc=$?
  line=$(grep -a "rows exact\|rows differ\|of [0-9]* rows" "$log" | tail -1 | tr -d '\r' | sed 's/\x1b\[[0-9;]*m//g')
  echo "run $i: $line exit $rc ($(( $(date +%s) - start )) s)"
  rm -f "$log"
done
