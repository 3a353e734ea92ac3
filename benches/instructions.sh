#!/usr/bin/env bash
# Instructions per item, the figure of record for per-item cost (see BENCHMARKS.md, "Instructions
# per item (callgrind)"). Builds benches/instructions.rs in release, runs every case under callgrind
# counting only the drain (`instr_drain`: executor and stream from the first poll to the end, not
# building or dropping the stream) and prints a Markdown table: Ir / N per item and the ratios of
# tasklane to futures-buffered.
#
#   bash benches/instructions.sh
#
# Overrides (environment): INSTR_N (items per run, default 100000), INSTR_LIMITS (default
# "1 16 256 4096"), INSTR_IMPLS (default "tasklane futures_buffered futures_util"), INSTR_FUTS
# (default "ready yield"), INSTR_ORDERS (default "unordered ordered"), INSTR_OUT (where callgrind's
# files go, default a new directory under /tmp; they are kept for callgrind_annotate).
# Needs valgrind (Debian: apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${INSTR_N:-100000}
LIMITS=${INSTR_LIMITS:-"1 16 256 4096"}
IMPLS=${INSTR_IMPLS:-"tasklane futures_buffered futures_util"}
FUTS=${INSTR_FUTS:-"ready yield"}
ORDERS=${INSTR_ORDERS:-"unordered ordered"}
OUT=${INSTR_OUT:-$(mktemp -d /tmp/instructions.XXXXXX)}
mkdir -p "$OUT"
# The one function counted; nothing else in the bench has this in its name.
PATTERN='*instr_drain*'

command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }

# Build (the bench profile: release with symbols, which is all callgrind needs for the pattern).
JSON=$(cargo bench --no-run --bench instructions --message-format=json)
BIN=$(printf '%s\n' "$JSON" | grep -o '"executable":"[^"]*/instructions-[^"]*"' | tail -n 1 |
    sed 's/^"executable":"//; s/"$//')
if [[ -z $BIN ]]; then
    # Fallback: the newest bench binary.
    BIN=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/instructions-* | grep -v '\.d$' | head -n 1)
fi
[[ -x $BIN ]] || { echo "no bench binary found ($BIN)" >&2; exit 1; }

declare -A IR
for fut in $FUTS; do
    for limit in $LIMITS; do
        for imp in $IMPLS; do
            for order in $ORDERS; do
                file="$OUT/callgrind.$imp.$order.$fut.$limit.$N.out"
                valgrind --tool=callgrind --collect-atstart=no --toggle-collect="$PATTERN" \
                    --callgrind-out-file="$file" "$BIN" \
                    "impl=$imp" "order=$order" "fut=$fut" "limit=$limit" "n=$N" \
                    >"$file.log" 2>&1 || { cat "$file.log" >&2; exit 1; }
                total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$file" | head -n 1)
                if [[ -z $total || $total == 0 ]]; then
                    echo "no instructions counted in $PATTERN for $imp $order $fut $limit (see $file)" >&2
                    exit 1
                fi
                IR[$imp.$order.$fut.$limit]=$total
                printf '.' >&2
            done
        done
    done
done
echo >&2

per_item() { awk -v t="$1" -v n="$N" 'BEGIN { printf "%.1f", t / n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# "a / b" of one value per order (unordered / ordered), "-" where a case was not run.
cell() {
    local f=$1 out=() order
    shift
    for order in $ORDERS; do out+=("$("$f" "$@" "$order")"); done
    local IFS=/
    echo "${out[*]}" | sed 's|/| / |g'
}
ir_of() { echo "${IR[$1.$4.$2.$3]:-}"; }
per_item_of() {
    local v
    v=$(ir_of "$@")
    if [[ -n $v ]]; then per_item "$v"; else echo -; fi
}
ratio_of() {
    local a b
    a=$(ir_of tasklane "$2" "$3" "$4")
    b=$(ir_of "$1" "$2" "$3" "$4")
    if [[ -n $a && -n $b ]]; then ratio "$a" "$b"; else echo -; fi
}

orders_label=$(echo $ORDERS | sed 's| | / |g')
echo "Instructions per item (callgrind Ir of $PATTERN / N), N = $N, $orders_label; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "binary: $BIN"
echo "callgrind files: $OUT"
echo
header="| fut | L |"
rule="|---|---|"
for imp in $IMPLS; do
    header+=" $imp |"
    rule+="---|"
done
for imp in $IMPLS; do
    [[ $imp == tasklane ]] && continue
    header+=" tasklane / $imp |"
    rule+="---|"
done
echo "$header"
echo "$rule"
for fut in $FUTS; do
    for limit in $LIMITS; do
        row="| $fut | $limit |"
        for imp in $IMPLS; do row+=" $(cell per_item_of "$imp" "$fut" "$limit") |"; done
        for imp in $IMPLS; do
            [[ $imp == tasklane ]] && continue
            row+=" $(cell ratio_of "$imp" "$fut" "$limit") |"
        done
        echo "$row"
    done
done
