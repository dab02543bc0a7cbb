"""Inference never imports training: prediction, checkpoints, ensembles, evaluation and explanations load
without ``mmsa_core.train`` (open_clip's library never imports its training package)."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

PROBE = """
import json, sys
import mmsa_core, mmsa_core.predictor, mmsa_core.checkpoint, mmsa_core.ensemble, mmsa_core.evaluate
import mmsa_core.features, mmsa_core.predict, mmsa_core.explain
print(json.dumps(sorted(m for m in sys.modules if m in {"mmsa_core.train", "mmsa_core.compare",
                                                          "mmsa_core.retrain", "mmsa_core.augment"})))
"""


def test_inference_modules_do_not_import_training():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_cache_lives_in_the_data_folder(monkeypatch, tmp_path):
    from mmsa_core.features import default_cache_dir

    monkeypatch.delenv("MMSA_CACHE_DIR", raising=False)
    monkeypatch.setenv("MMSA_DATA_DIR", str(tmp_path / "appdata"))
    assert default_cache_dir() == tmp_path / "appdata" / "cache"
    monkeypatch.setenv("MMSA_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"


def test_feature_subsets_are_views_and_batch_like_copies():
    import torch

    from mmsa_core.features import FeatureSet

    mask = torch.zeros(6, 5, dtype=torch.bool)
    for i, n in enumerate([1, 5, 2, 3, 4, 2]):
        mask[i, :n] = True
    fs = FeatureSet(torch.randn(6, 5, 3), mask, torch.arange(30).view(6, 5), torch.randn(6, 4, 2, 2))
    sub = fs.select([4, 1, 3]).select([2, 0])  # rows 3 and 4 of the original
    assert sub.text_hidden.data_ptr() == fs.text_hidden.data_ptr()  # no copy
    assert sub.lengths.tolist() == [3, 4] and len(sub) == 2
    got, want = sub.batch(torch.arange(2), "cpu"), sub.materialize().batch(torch.arange(2), "cpu")
    assert all(torch.equal(a, b) for a, b in zip(got, want)) and got[0].shape == (2, 4, 3)  # trimmed to 4 tokens
