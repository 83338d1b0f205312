#!/usr/bin/env bash
# The GPU check: the CUDA tests, the update benchmark and epoch benchmarks on a CUDA machine, in one go.
#
#   bash benchmarks/gpu_check.sh [OUTPUT_DIR]        (default: $OUT, else data/gpu_check)
#
# Each step has its own time limit and log in OUTPUT_DIR; a failing step does not stop the next.
# Where the machine lacks the project's packages and has no package index, put their wheels in .whl/
# (and any plain packages in .whl/site/): they are installed into /tmp/site first.
set -u
cd "$(dirname "$0")/.."
out="${1:-${OUT:-data/gpu_check}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 MUJOCO_GL=egl OMP_NUM_THREADS=1
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:$PWD/.whl/site${PYTHONPATH:+:$PYTHONPATH}"
fi

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to OUTPUT_DIR/NAME.log, report the status
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    echo "== $name: $*"
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    local status=$?
    tail -n "${TAIL:-25}" "$out/$name.log"
    echo "== $name: exit $status after $((SECONDS - started)) s"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc; uptime;
  python3 -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"; } \
    2>&1 | tee "$out/machine.txt"
# The CPU suite (8 workers) beside the CUDA tests; the benchmarks start when both are done.
TAIL=40 step test_suite 180 python3 -m pytest -q -p no:cacheprovider -n 8 tests --ignore tests/test_gpu.py > "$out/test_suite.txt" &
step cuda_tests 180 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -rA
wait
cat "$out/test_suite.txt"
step bench_update 100 python3 -m benchmarks.bench_update --device cuda --rounds 2 --batches 32 256 2560
step epoch_reacher 100 python3 -m benchmarks.bench_epoch --env JacoReachMT5-v1 --experiment dnc_sac qmp_dnc \
    --epochs 1 --num_evaluation_episodes 0 --gpu 0
step epoch_maze 90 python3 -m benchmarks.bench_epoch --env MazeLarge-10-v0 --experiment dnc_sac qmp_dnc \
    --epochs 1 --num_evaluation_episodes 0 --gpu 0
# MT10 at the preset (its epoch is updates on a CPU): each epoch's progress line has its wall time.
step run_mt10 "${MT10_SECONDS:-150}" python3 run.py dnc_sac --env=MetaWorldMT10-v2 --gpu 0 --wandb False \
    --n_epochs 2 --min_buffer_size 1000 --log_dir /tmp/gpu_check_runs
