#!/usr/bin/env bash
# Short GPU check of the full-size Omniglot pipeline (50 alphabets, 105x105, bf16): parallel then
# soft ordering, one seed each, a fixed step budget. Data under .devdata/data (see device_run.sh).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
D=$PWD/.devdata/data
END=$((SECONDS + ${LIMIT:-150}))
STEPS=${STEPS:-1200}
for o in parallel soft; do
  timeout $((END - SECONDS)) python3 -m softorder train omniglot --data-dir "$D" --quiet --out /tmp/om/$o \
    --set device=cuda --set precision=bf16 --set ordering=$o --set steps=$STEPS --set eval_every=200 \
    --set checkpoint_every=400 >> "$OUT/omniglot.log" 2>&1
  cp /tmp/om/$o/result.json "$OUT/omniglot_$o.json" 2>/dev/null
  cp /tmp/om/$o/metrics.jsonl "$OUT/omniglot_${o}_metrics.jsonl" 2>/dev/null
done
