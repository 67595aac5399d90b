#!/usr/bin/env bash
# Re-create the bundled pretrained models in resources/models/ (run from the repository root).
# These are the exact commands that produced the bundled files (each file also records its own
# command in meta "train_command"; `dpm info resources/models/X.h5` shows it). They were run on a
# 2-core CPU shared with other jobs, one torch thread each, at most two at a time; budgets are wall
# seconds, so the number of iterations (and K) depends on the machine's speed and load.
set -euo pipefail
cd "$(dirname "$0")/.."

# (swissroll, heartbeat, mnist5k, digits and colortex were written to scratch paths and copied here: their meta
#  train_command names the scratch --out; same preset, same options)
dpm train swissroll  --seconds 900  --out resources/models/swissroll.h5  --threads 1
dpm train heartbeat  --seconds 600  --out resources/models/heartbeat.h5  --threads 1
# the image presets (U-Net, hybrid objective: the presets' default; --objective hybrid is spelled out)
dpm train digits     --steps 1500   --out resources/models/digits.h5     --threads 1 --n-eval 64 --report-every 500  --objective hybrid
dpm train mnist5k    --seconds 6000 --out resources/models/mnist5k.h5    --threads 1 --n-eval 32 --report-every 1000 --objective hybrid
dpm train deadleaves --seconds 1800 --out resources/models/deadleaves.h5 --threads 1 --n-eval 32 --report-every 1000 --objective hybrid
dpm train bark       --seconds 3600 --out resources/models/bark.h5       --threads 1 --n-eval 32 --report-every 1000 --objective hybrid
dpm train colortex   --seconds 2700 --out resources/models/colortex.h5   --threads 1 --n-eval 32 --report-every 2000 --objective hybrid

# sample grids (6 × 6) shown in resources/models/README.md
for p in deadleaves bark colortex; do
  dpm sample resources/models/$p.h5 -n 36 --out resources/models/samples/$p.png --threads 1
done
# digits: the grid is the first 36 of the 100 samples bench/sample_quality.py scores (seed 0)
python bench/sample_quality.py resources/models/digits.h5 resources/models/mnist5k.h5 -n 100 --grids /tmp/grids --threads 1
cp /tmp/grids/digits.png /tmp/grids/mnist5k.png resources/models/samples/
