#!/usr/bin/env bash
# The GPU measurements quoted in the README (run on a lent GPU machine: python3 there holds torch + CUDA).
# Usage: OUT=/some/folder bash benchmarks/gpu_checks.sh      (each benchmark's output lands in $OUT/*.txt)
set -uo pipefail
export PYTHONPATH=$PWD DLMBENCH_NO_PROGRESS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/dlmbench-gpu}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
for prec in float32 float64; do
  python3 benchmarks/llada_memory.py --preset 8b --device cuda --mc 16,64,128 --batch 8,16,32 --score-precision $prec 2>&1 | tee "$OUT/llada_8b_$prec.txt"
done
python3 benchmarks/llada_memory.py --preset 8b --device cuda --mc 64 --batch 64 --prompt 448 --answer 64 2>&1 | tee "$OUT/llada_8b_long.txt"
# harness overhead: the default small DiT, then an mdlm-owt-sized one (768 wide, 12 blocks, GPT-2 vocabulary, 1024 tokens)
python3 benchmarks/harness_overhead.py --device cuda --repeats 5 2>&1 | tee "$OUT/overhead_small.txt"
python3 benchmarks/harness_overhead.py --device cuda --hidden 768 --blocks 12 --heads 12 --vocab 50258 --length 1024 --requests 32 --mc 4 --batch-size 16 --repeats 5 2>&1 | tee "$OUT/overhead_owt.txt"
# the four KJV zoo adapters on CUDA (float32, bfloat16) against the CPU, and their samplers on CUDA
python3 benchmarks/gpu_consistency.py 2>&1 | grep -v "^Loading weights" | tee "$OUT/consistency.txt"
# LLaDA-8B loading through the real path (published shard layout, random bf16 weights): host RSS and GPU memory
python3 benchmarks/llada_loading.py write --preset 8b --dir /tmp/llada-8b --shards 6 2>&1 | tee "$OUT/llada_8b_loading.txt"
python3 benchmarks/llada_loading.py load --dir /tmp/llada-8b --device cuda 2>&1 | tee -a "$OUT/llada_8b_loading.txt"
