#!/usr/bin/env bash
# One prepared GPU check (issue 11 section 4, issue 13's GPU ratios), about 12 minutes in all:
# 1. softorder bench on the GPU, fp32 and bf16: the paper's workloads, the block workloads and the
#    Omniglot conv step (conv-T50: T=50, 105x105, 16 images per task);
# 2. the 50-alphabet Omniglot comparison at the paper's scale (105x105, 53 filters, padding 0, 20%
#    test), all four orderings, bf16, as many paired trials as fit (TRIALS, default 4), with the
#    105x105 settings chosen on validation on the CPU (results/omniglot50/tune/chosen-105.yaml,
#    written by `python scripts/robustness.py choose` from the robustness grid of issue 21: soft
#    ordering's mixture and depth norm, each method's lr); without it the 28x28 recipe (chosen.yaml),
#    else the shipped omniglot.yaml. The image keys (size, filters, padding, batch, threads) are set
#    to the paper's either way. Finished trials' small files go to $OUT.
# Data under .devdata/data (omniglot/*.zip, as in ../shared/data); run with `carry: [.devdata]`.
#   OUT=/tmp/out LIMIT=720 bash scripts/device_omniglot.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
D=$PWD/.devdata/data
END=$((SECONDS + ${LIMIT:-720}))
left() { echo $((END - SECONDS > 1 ? END - SECONDS : 1)); }
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
W=dense-T10,dense-T40,conv-T50,resmlp-T10,transformer-T8
for DT in fp32 bf16; do
  timeout $(left) python3 -m softorder bench --device cuda --dtype $DT --workloads $W --min-time 1 --json \
    >> "$OUT/bench_gpu.jsonl" 2>> "$OUT/bench_gpu.err"
done
CFG=()
for C in results/omniglot50/tune/chosen-105.yaml results/omniglot50/tune/chosen.yaml; do
  [ -f "$C" ] && { CFG=(--config "$C"); break; }
done
echo "config: ${CFG[*]:-omniglot.yaml}" > "$OUT/omniglot_config.txt"
timeout $(left) python3 -m softorder compare omniglot "${CFG[@]}" --trials "${TRIALS:-4}" --workers 1 \
  --set tasks=50 --set image_size=105 --set padding=0 --set channels=53 --set batch_size=8 \
  --set steps="${STEPS:-1200}" --set eval_every=200 --set checkpoint_every=400 --set test_fraction=0.2 \
  --set device=cuda --set precision=bf16 --set threads=null --data-dir "$D" --out /tmp/om \
  > "$OUT/omniglot.log" 2>&1
cd /tmp && find om -name config.yaml -o -name result.json -o -name metrics.jsonl -o -name 'results.*' \
  | tar czf "$OUT/omniglot_runs.tar.gz" -T - 2>/dev/null
ls -la "$OUT"
