#!/usr/bin/env bash
# Re-create the bundled pretrained models in resources/models/ (run from the repository root).
# These are the exact commands that produced the bundled files (each file also records its own
# command in meta "train_command"; `dpm info resources/models/X.h5` shows it). They were run on a
# 2-core CPU shared with other jobs, one torch thread each, at most two at a time; budgets are wall
# seconds, so the number of iterations (and K) depends on the machine's speed and load.
set -euo pipefail
cd "$(dirname "$0")/.."

dpm train swissroll  --seconds 1500 --out resources/models/swissroll.h5  --threads 1
# …then continued (the cosine learning-rate schedule runs on over the 1860 s total, so this resumes at 14 % of lr)
dpm train --resume resources/models/swissroll.h5 --seconds 360 --out resources/models/swissroll.h5 --threads 1
# (the bundled file was written to a scratch path and copied here: its meta train_command says
#  --out /tmp/bund/hb2/heartbeat.h5; same preset, same options)
dpm train heartbeat  --seconds 480  --out resources/models/heartbeat.h5  --threads 1
dpm train digits     --seconds 300  --out resources/models/digits.h5     --threads 1 --n-eval 64
dpm train mnist5k    --seconds 600  --out resources/models/mnist5k.h5    --threads 1 --n-eval 32
dpm train deadleaves --seconds 600  --out resources/models/deadleaves.h5 --threads 1 --n-eval 32
dpm train bark       --seconds 600  --out resources/models/bark.h5       --threads 1 --n-eval 32

# sample grids (6 × 6) shown in resources/models/README.md
for p in digits mnist5k deadleaves bark; do
  dpm sample resources/models/$p.h5 -n 36 --out resources/models/samples/$p.png --threads 1
done

# Last continuation of swissroll and heartbeat (session 1, 21:10–21:26, one thread each):
# dpm train --resume swissroll.h5 --seconds 600 --lr 7e-4 --out swissroll.h5 --threads 1   # K 2.300 → 2.308
# dpm train --resume heartbeat.h5 --seconds 600 --lr 1e-3 --out heartbeat.h5 --threads 1   # K −2.772 → −2.759
