#!/usr/bin/env bash
# The CUDA check of issue #18: builds repro with `--features cuda`, runs every
# pipeline's `quick` profile once on the CPU and once with `--device cuda`
# (separate stores), and prints, per pipeline, both wall times, whether each
# run succeeded, and every verdict row that differs between the two reports.
# Needs an NVIDIA GPU with its driver and the CUDA toolkit (nvcc) on PATH, and
# the datasets the quick profiles read (set REPRO_DATA to a folder holding them,
# or run `repro data fetch` first: the GPU machine may have no network).
#
#     scripts/gpu-check.sh [OUT_DIR]      # default /tmp/gpu-check
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/gpu-check}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || { echo "gpu-check: no NVIDIA GPU visible (nvidia-smi failed)"; exit 1; }
cargo build --release --features cuda 2>&1 | tail -3
bin=target/release/repro
[ -x "$bin" ] || { echo "gpu-check: the CUDA build failed"; exit 1; }
status=0
for pipeline in paper lottery dendrites metaplasticity; do
  for device in cpu cuda; do
    start=$(date +%s.%N)
    "$bin" run "pipelines/$pipeline.yaml" --profile quick --device "$device" \
      --store "$out/$device/store" --reports "$out/$device/reports" \
      >"$out/$device/$pipeline.log" 2>&1
    rc=$?
    seconds=$(echo "$(date +%s.%N) - $start" | bc)
    printf '%-15s %-5s exit %d  %7.1f s\n' "$pipeline" "$device" "$rc" "$seconds"
    [ "$rc" -eq 0 ] || { status=1; tail -5 "$out/$device/$pipeline.log" | sed 's/^/    /'; }
  done
  # Metric and verdict columns of the report's verdict table (| metric | ours | paper | tolerance | verdict | why |).
  verdicts() { awk -F'|' '$6 ~ /reproduced|comparable/ { print $2 "->" $6 }' "$out/$1/reports/$pipeline/README.md" 2>/dev/null; }
  if ! diff <(verdicts cpu) <(verdicts cuda) >"$out/$pipeline.verdicts.diff"; then
    echo "    verdicts differ (cpu < > cuda):"; sed 's/^/    /' "$out/$pipeline.verdicts.diff"
    status=1
  fi
done
exit $status
