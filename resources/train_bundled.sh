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
# digits (U-Net preset): 1200 s, then continued for 1200 s at a lower base learning rate (a fresh cosine
# schedule; the first part ran through the library Trainer with the preset's settings but no preview
# samples, n_samples = 0, and report_every 250, then was continued with this dpm train --resume command)
dpm train digits     --seconds 1200 --out resources/models/digits.h5     --threads 1 --n-eval 64 --report-every 250
dpm train --resume resources/models/digits.h5 --seconds 1200 --lr 1e-3 --out resources/models/digits.h5 --threads 1 --n-eval 64 --report-every 1000
# mnist5k: the bundled file is the earlier conv-preset model (models/presets.py before commit bac6e50:
# arch "conv", 32 channels, param "posterior"), trained by these two commands:
#   dpm train mnist5k --seconds 1500 --out resources/models/mnist5k.h5 --threads 1 --n-eval 32
#   dpm train --resume resources/models/mnist5k.h5 --seconds 1200 --lr 4e-3 --out resources/models/mnist5k.h5 --threads 1 --n-eval 32
# The U-Net preset's run below (1864 its in 3300 s on a heavily shared core) reached K 1.829 ± 0.028 and
# 34 % confident samples, not better, so it was not bundled.
dpm train mnist5k    --seconds 3300 --out resources/models/mnist5k.h5    --threads 1 --n-eval 32 --report-every 2000
# deadleaves and bark: the bundled files were trained with the earlier multi-scale conv presets (models/presets.py
# before commit bac6e50, arch "conv"); these commands now train the U-Net presets (not re-run: no CPU time left)
dpm train deadleaves --seconds 600  --out resources/models/deadleaves.h5 --threads 1 --n-eval 32
dpm train bark       --seconds 600  --out resources/models/bark.h5       --threads 1 --n-eval 32

dpm train colortex   --seconds 900  --out resources/models/colortex.h5   --threads 1 --n-eval 32 --report-every 2000

# sample grids (6 × 6) shown in resources/models/README.md
for p in mnist5k deadleaves bark colortex; do
  dpm sample resources/models/$p.h5 -n 36 --out resources/models/samples/$p.png --threads 1
done
# digits: the grid is the first 36 of the 100 samples bench/sample_quality.py scores (seed 0)
python bench/sample_quality.py resources/models/digits.h5 -n 100 --grids /tmp/grids --threads 1
cp /tmp/grids/digits.png resources/models/samples/digits.png
