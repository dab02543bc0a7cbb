"""The pieces of an explanation: crop geometry, overlay, method menu, faithfulness masks, HTML page and CLI."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from mmsa_core import save_checkpoint
from mmsa_core.explain import explain, overlay
from mmsa_core.explain.__main__ import main
from mmsa_core.explain.cam import get_cam_method
from mmsa_core.explain.faithfulness import keep_masks
from mmsa_core.explain.geometry import crop_box, to_original
from mmsa_core.explain.page import highlighted_words, to_html

from .conftest import tiny_model

LITE0 = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                   T.Normalize((0.5,) * 3, (0.5,) * 3)])


def picture(w=120, h=80, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(512, 256), (256, 512), (300, 300), (1000, 257), (100, 80)])
def test_crop_box_is_where_the_center_crop_lies(size):
    """Cutting the box out of the original and resizing it gives the model's input (up to resampling)."""
    img = picture(*size)
    left, top, right, bottom = crop_box(LITE0, size)
    w, h = size
    assert right - left == pytest.approx(bottom - top, rel=0.02)  # a square crop stays square
    assert (right - left) == pytest.approx(min(w, h) * 224 / 256, rel=0.02)
    assert (left + right) / 2 == pytest.approx(w / 2, abs=1) and (top + bottom) / 2 == pytest.approx(h / 2, abs=1)
    model_input = LITE0(img)
    by_box = T.Compose([T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])(
        img.crop((left, top, right, bottom)).resize((224, 224), Image.BICUBIC))
    assert (model_input - by_box).abs().mean() < 0.25  # same content, not just same size


def test_crop_box_of_torchvision_presets_and_unknown_steps():
    from torchvision.models import ResNet50_Weights

    box = crop_box(ResNet50_Weights.IMAGENET1K_V2.transforms(), (464, 232))
    assert box == pytest.approx((120, 4, 344, 228))  # shorter side already 232; crop 224
    assert crop_box(T.Compose([T.Resize((64, 64)), T.ToTensor()]), (100, 50)) == (0, 0, 100, 50)
    with pytest.raises(ValueError, match="Cannot map heatmaps back through RandomResizedCrop"):
        crop_box(T.Compose([T.RandomResizedCrop(64)]), (100, 50))


def test_heatmap_is_pasted_into_the_box_and_zero_outside():
    heat = np.ones((224, 224), np.float32)
    out = to_original(heat, (64, 0, 320, 256), (384, 256))
    assert out.shape == (256, 384) and out.dtype == np.float32
    assert out[:, 64:320].min() == 1.0 and out[:, :64].max() == 0.0 and out[:, 320:].max() == 0.0


def test_overlay_blends_at_the_asked_opacity():
    img, heat = picture(), np.linspace(0, 1, 80 * 120, dtype=np.float32).reshape(80, 120)
    assert np.array_equal(np.asarray(overlay(img, heat, alpha=0.0)), np.asarray(img))
    half, full = np.asarray(overlay(img, heat, 0.5), float), np.asarray(overlay(img, heat, 1.0), float)
    assert np.abs(half - (np.asarray(img, float) + full) / 2).max() <= 1.0
    dimmed = np.asarray(overlay(img, heat, 0.5, box=(40, 0, 120, 80)))
    assert np.abs(dimmed[:, :40].astype(float) - 0.4 * np.asarray(img)[:, :40]).max() <= 1.0  # not seen: grey
    with pytest.raises(ValueError, match="does not match the image"):
        overlay(img, heat[:10], 0.5)
    with pytest.raises(ValueError, match="alpha"):
        overlay(img, heat, 1.5)


def test_reblend_reuses_the_heatmap():
    img = picture(90, 60)
    e = explain(tiny_model("concat").eval(), img, "hello there", faithfulness=False)
    assert np.array_equal(np.asarray(e.reblend(img, 0.5)), np.asarray(e.overlay))
    assert np.array_equal(np.asarray(e.reblend(img, 0.0))[10:50, 30], np.asarray(img)[10:50, 30])  # in the box


@pytest.mark.parametrize("alias,name", [("gradcam", "GradCAM"), ("Grad-CAM++", "GradCAM++"),
                                        ("gradcampp", "GradCAM++"), ("hires_cam", "HiResCAM"),
                                        ("EIGENCAM", "EigenCAM"), ("score-cam", "ScoreCAM")])
def test_methods_by_any_spelling(alias, name):
    assert get_cam_method(alias)[0] == name


def test_keep_masks_remove_exact_fractions_even_with_ties():
    cam = np.zeros((10, 10), np.float32)
    cam[:2] = 1.0  # 20 % hot, 80 % tied at zero
    morf, lerf = keep_masks(cam, 0.3)
    assert int((morf == 0).sum()) == 30 and int((lerf == 0).sum()) == 30
    assert (morf[:2] == 0).all() and (lerf[:2] == 1).all()  # most relevant go first / last
    assert torch.equal(keep_masks(cam, 0.3)[0], morf)  # ties are broken the same way every time


def test_html_escapes_and_colours_words():
    html = highlighted_words([("<b>bad</b>", -1.0), ("good", 0.5), ("meh", 0.0)])
    assert "&lt;b&gt;bad&lt;/b&gt;" in html and "<b>" not in html
    assert "rgba(220,38,38,0.850)" in html and "rgba(22,163,74,0.425)" in html


def test_cli_writes_overlay_page_and_scores(tmp_path, capsys):
    path = save_checkpoint(tiny_model("attention_concat"), tmp_path / "m.pt")
    picture(160, 100).save(tmp_path / "x.jpg")
    text = "so <happy> today #sun 😀"
    main([str(path), "--image", str(tmp_path / "x.jpg"), "--text", text, "--out", str(tmp_path / "out"),
          "--method", "hirescam", "--alpha", "0.6", "--device", "cpu"])
    out = tmp_path / "out"
    assert Image.open(out / "overlay.png").size == (160, 100) and Image.open(out / "heatmap.png").size == (160, 100)
    scores = json.loads((out / "explanation.json").read_text(encoding="utf-8"))
    assert [w for w, _ in scores["word_scores"]] == text.split() and scores["method"] == "HiResCAM"
    page = (out / "explanation.html").read_text(encoding="utf-8")
    assert "&lt;happy&gt;" in page and "😀" in page and 'src="overlay.png"' in page
    assert "explanation.html" in capsys.readouterr().out


def test_cli_says_what_is_wrong(tmp_path):
    path = save_checkpoint(tiny_model("concat"), tmp_path / "m.pt")
    picture().save(tmp_path / "x.jpg")
    with pytest.raises(SystemExit, match=r"error: Unknown CAM method 'nope'; choose from \["):
        main([str(path), "--image", str(tmp_path / "x.jpg"), "--text", "hi", "--out", str(tmp_path), "--method",
              "nope", "--device", "cpu"])
    with pytest.raises(SystemExit, match="error: Image file not found"):
        main([str(path), "--image", str(tmp_path / "missing.jpg"), "--text", "hi", "--out", str(tmp_path),
              "--device", "cpu"])


def test_page_of_a_text_only_model_has_no_image(tmp_path):
    e = explain(tiny_model("text_only").eval(), picture(), "just words")
    page = to_html(e)
    assert "<img" not in page and "ignores the image" in page
