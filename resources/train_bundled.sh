#!/usr/bin/env bash
# Re-create the bundled pretrained models in resources/models/ (run from the repository root).
# These are the exact commands that produced the bundled files (each file also records its own
# command in meta "train_command"; `dpm info resources/models/X.h5` shows it). They were run on a
# 2-core CPU shared with other jobs, one torch thread each, at most two at a time; budgets are wall
# seconds, so the number of iterations (and K) depends on the machine's speed and load.
set -euo pipefail
cd "$(dirname "$0")/.."

# (swissroll, heartbeat and mnist5k were written to scratch paths and copied here: their meta
#  train_command names the scratch --out; same preset, same options)
dpm train swissroll  --seconds 900  --out resources/models/swissroll.h5  --threads 1
dpm train heartbeat  --seconds 600  --out resources/models/heartbeat.h5  --threads 1
dpm train digits     --seconds 300  --out resources/models/digits.h5     --threads 1 --n-eval 64
dpm train mnist5k    --seconds 1500 --out resources/models/mnist5k.h5    --threads 1 --n-eval 32
# …then continued (the cosine schedule runs over the 2700 s total; --lr raises its base)
dpm train --resume resources/models/mnist5k.h5 --seconds 1200 --lr 4e-3 --out resources/models/mnist5k.h5 --threads 1 --n-eval 32
dpm train deadleaves --seconds 600  --out resources/models/deadleaves.h5 --threads 1 --n-eval 32
dpm train bark       --seconds 600  --out resources/models/bark.h5       --threads 1 --n-eval 32

# sample grids (6 × 6) shown in resources/models/README.md
for p in digits mnist5k deadleaves bark; do
  dpm sample resources/models/$p.h5 -n 36 --out resources/models/samples/$p.png --threads 1
done
