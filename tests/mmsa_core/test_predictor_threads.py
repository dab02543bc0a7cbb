from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from mmsa_core import save_checkpoint
from mmsa_core.predictor import Predictor

from .conftest import tiny_model


@pytest.mark.filterwarnings("ignore")
def test_concurrent_explanations_agree_with_sequential_ones(tmp_path):
    pred = Predictor.from_checkpoint(save_checkpoint(tiny_model("attention_concat"), tmp_path / "t.pt"), device="cpu")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8))
    ref = pred.explain(img, "so happy today #sun", faithfulness=False)
    with ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(lambda _: pred.explain(img, "so happy today #sun", faithfulness=False), range(8)))
    for o in outs:
        assert np.allclose(o.heatmap, ref.heatmap, atol=1e-5)
        assert [w for w, _ in o.word_scores] == [w for w, _ in ref.word_scores]
