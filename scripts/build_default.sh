#!/usr/bin/env bash
# How the shipped default (mmsa_core/weights/default.pt) is made, from a checkout with ../shared beside it.
# About 40 minutes on a 2-core CPU (the cross-validation is most of it; SKIP_CV=1 rebuilds the model from the
# saved CV runs, in about 4 minutes).
#
# 1. The recipe's 5-fold cross-validation over train+val, seeds 0-2 (block cv-elr1e4): the estimate in
#    docs/results.md. The recipe itself was chosen on cross-validation too ("How the recipe was chosen"; its
#    encoder learning rate in "A higher learning rate for the fine-tuned text encoder").
# 2. The shipped model: one model of the recipe, seed 0, refit on MVSA train + val (--train-on-val: all 4,061
#    labelled posts; every choice was made by the cross-validation of step 1). Val trained it, so it has no val
#    figures; its estimate is step 1's, stored in the checkpoint by step 4, and the retraining gate judges it on
#    the audit set.
# 3. Its fine-tuned MiniLM layers stored as int8 deltas from the pretrained ones.
# 4. The neutral decision bias: chosen for weighted F1 on the held-out probabilities of step 1 (nested estimate
#    in block cv-bias), written into the checkpoint with that estimate (metrics["cv"]).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export TQDM_DISABLE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
RECIPE=(--model attention_concat --text-layers -1 --layer-decay 0.9 --encoder-lr 1e-4 --bucket-by-length
        --aux-modality-weight 0.3 --epochs 2 --no-early-stopping --train-on-val)

if [ "${SKIP_CV:-0}" != 1 ]; then
  $PY -m mmsa_core.compare --cv 5 --models attention_concat --out docs/results.md --seeds 0 1 2 --epochs 2 \
    --set text_trainable_layers=-1 --set layer_decay=0.9 --set bucket_by_length=true --set aux_modality_weight=0.3 \
    --set encoder_lr=0.0001 --save-dir runs/cv/elr1e4 --block cv-elr1e4
fi
$PY -m mmsa_core.train "${RECIPE[@]}" --seed 0 --out runs/final/attention_concat-text6-aux-lr1e4-s0.pt
$PY -m mmsa_core.ensemble runs/final/attention_concat-text6-aux-lr1e4-s0.pt --storage int8-delta \
  --out mmsa_core/weights/default.pt
$PY -m mmsa_core.calibrate runs/cv/elr1e4 --label neutral --metric weighted_f1 \
  --checkpoint mmsa_core/weights/default.pt --out docs/results.md --block cv-bias
