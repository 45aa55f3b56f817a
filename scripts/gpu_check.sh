#!/usr/bin/env bash
# One command for a lent GPU (issue 22, part 3), about 6 minutes, every output under $OUT:
# 1. the CUDA tests (`pytest -m cuda`: every block x ordering x dtype forward/backward, the README's
#    soft-ordered transformer, fused = reference in fp32) -> pytest_cuda.log;
# 2. `softorder bench --learned` in fp32 and bf16 on every workload (gated and routed steps too) -> bench_gpu.jsonl;
# 3. a short Omniglot run at 105x105 (50 alphabets, bf16, 300 steps, run health every 50 steps)
#    with the 105x105 recipe where it exists -> omniglot105/ (config, metrics, result).
# Prepare on the CPU machine (the device has no pytest and no network; ../shared does not travel):
#   mkdir -p .devdata/data && cp -r ../shared/data/omniglot .devdata/data/
#   python -m pip install -q --target .devdata/site pytest
# then run it with `carry: [.devdata]`:  OUT=$OUT LIMIT=420 bash scripts/gpu_check.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD/src:$PWD/.devdata/site PYTHONUNBUFFERED=1
END=$((SECONDS + ${LIMIT:-420}))
left() { echo $((END - SECONDS > 1 ? END - SECONDS : 1)); }
{ date -u; nvidia-smi --query-gpu=name,memory.total --format=csv
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } > "$OUT/gpu.txt" 2>&1
timeout $(($(left) / 3)) python3 -m pytest -q -m cuda -p no:cacheprovider tests > "$OUT/pytest_cuda.log" 2>&1
echo "pytest exit $?" >> "$OUT/pytest_cuda.log"
W=dense-T10,dense-T40,conv-T50,resmlp-T10,transformer-T8
for DT in fp32 bf16; do
  timeout $(($(left) / 3)) python3 -m softorder bench --device cuda --dtype $DT --workloads $W --min-time 0.5 --learned \
    --json >> "$OUT/bench_gpu.jsonl" 2>> "$OUT/bench_gpu.err"
done
CFG=omniglot  # the shipped omniglot.yaml, or the 105x105 recipe chosen on validation (issue 21)
[ -f results/omniglot50/tune/chosen-105.yaml ] && CFG=results/omniglot50/tune/chosen-105.yaml
timeout $(left) python3 -m softorder train "$CFG" --set tasks=50 --set image_size=105 \
  --set padding=0 --set channels=53 --set batch_size=8 --set steps=300 --set eval_every=50 \
  --set checkpoint_every=100 --set device=cuda --set precision=bf16 --set threads=null \
  --data-dir "$PWD/.devdata/data" --out /tmp/om105 > "$OUT/omniglot105.log" 2>&1
mkdir -p "$OUT/omniglot105" && cp /tmp/om105/{config.yaml,metrics.jsonl,result.json} "$OUT/omniglot105/" 2>/dev/null
ls -la "$OUT"
