#!/usr/bin/env bash
# The digit classifier for handwriting never trained on (issue 16), end to end, from a seed:
#   held-out crop sets (calibration + test writers, train/splits.py) -> training crops of the training
#   writers, restyled (train/styles.py) -> training (--budget-s or --steps) -> temperature and confusion
#   matrix on the calibration writers -> ONNX in $MODEL -> bench/unseen_writers.py, old model vs new.
#
#   DATA=../shared/data WORK=/tmp/d MODEL=ocr/reader/models OLD=/tmp/old_model WORKERS=16 train/unseen_pipeline.sh
#
# Knobs (environment): TPS_EVAL (TPS per held-out set), TPS_TRAIN (upper bound), DEADLINE (s of training-crop
# making), STEPS (optimizer steps; or BUDGET_S to fit them in that many seconds, printed), SEED, PYTHON.
# With OLD unset the bench reads only the new model. Shipped model: see digits.json "trained".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DATA=${DATA:-../shared/data}
WORK=${WORK:-/tmp/formc-digits}
MODEL=${MODEL:-ocr/reader/models}
WORKERS=${WORKERS:-2}
EVAL_WORKERS=${EVAL_WORKERS:-$(( WORKERS > 4 ? 4 : 1 ))}
TRAIN_WORKERS=${TRAIN_WORKERS:-$(( WORKERS > 4 ? WORKERS - EVAL_WORKERS : WORKERS ))}
TPS_EVAL=${TPS_EVAL:-60}
TPS_TRAIN=${TPS_TRAIN:-4000}
FIRST=${FIRST:-1}
DEADLINE=${DEADLINE:-0}
SEED=${SEED:-1}
STEPS=${STEPS:-0}
BUDGET_S=${BUDGET_S:-0}
BATCH=${BATCH:-1024}
SMOOTHING=${SMOOTHING:-0.03}
SPLITS="mnist=0.3 cvl=0.3 femnist=0.25 optdigits=0.15 comnist-x=1"
mkdir -p "$WORK" "$MODEL"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

stamp "held-out crop sets ($TPS_EVAL TPS each, $EVAL_WORKERS workers) in the background"
EVAL_CMD="bench/unseen_writers.py --make $WORK/eval --tps $TPS_EVAL --seed 900 --workers $EVAL_WORKERS --data $DATA"
$PYTHON $EVAL_CMD > "$WORK/eval.log" 2>&1 &
EVAL_PID=$!

CROPS_CMD="train/make_crops.py --out $WORK/train --tps $TPS_TRAIN --first $FIRST --seed $SEED --workers $TRAIN_WORKERS --chunk 10 --splits $SPLITS --restyle --data $DATA --deadline $DEADLINE"
stamp "training crops: $CROPS_CMD"
$PYTHON $CROPS_CMD
wait $EVAL_PID || { cat "$WORK/eval.log"; exit 1; }
tail -n 2 "$WORK/eval.log"
stamp "crops made"

TRAIN_CMD="train/train_digits.py --train $WORK/train --calib $WORK/eval/cvl-calib $WORK/eval/femnist-calib --arch v2 --seed $SEED --batch $BATCH --smoothing $SMOOTHING --out $MODEL"
if [ "$STEPS" != 0 ]; then TRAIN_CMD="$TRAIN_CMD --steps $STEPS"; else TRAIN_CMD="$TRAIN_CMD --budget-s $BUDGET_S"; fi
$PYTHON - "$WORK/provenance.json" <<EOF
import json, sys
from pathlib import Path
sys.path.insert(0, ".")
from train.splits import check_disjoint
json.dump({"made_by": ["$EVAL_CMD", "$CROPS_CMD", "$TRAIN_CMD (--budget-s: the steps it fitted are in 'steps')",
                       "train/unseen_pipeline.sh runs these three; DATA = ../shared/data"],
           "splits": "train/splits.py: TRAIN mnist x_train, cvl x_train, femnist writers not held out, optdigits x_train, "
                     "comnist X's; calibration on cvl-calib + femnist-calib writers only; never trained on: cvl-test, "
                     "femnist-test, optdigits-test, semeion, mnist-test, kawalc1",
           "writers_per_split": check_disjoint(Path("$DATA"))},
          open(sys.argv[1], "w"), indent=1)
EOF
stamp "training: $TRAIN_CMD"
$PYTHON $TRAIN_CMD --provenance "$WORK/provenance.json"
stamp "trained"

BENCH="bench/unseen_writers.py --crops $WORK/eval --data $DATA --model new=$MODEL --json $WORK/unseen.json"
if [ -n "${OLD:-}" ]; then BENCH="bench/unseen_writers.py --crops $WORK/eval --data $DATA --model old=$OLD --model new=$MODEL --json $WORK/unseen.json"; fi
$PYTHON $BENCH
stamp "done"
