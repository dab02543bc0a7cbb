"""Train a model on MVSA-Single (plus annotation exports) and write a self-describing checkpoint.

    python -m mmsa_core.train --model mscmf --out runs/mscmf.pt [--text-layers 2] [--loss adaptive] ...

Frozen encoder parts run once and are cached on disk; only the head (and the fine-tuned top layers)
train, with AdamW, a linear warm-up/decay schedule, early stopping and checkpoint choice on ``val``.
"""
from __future__ import annotations

import argparse
import copy
import logging
import random
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from .augment import augment_text, image_augmentation
from .checkpoint import save_checkpoint
from .config import ModelConfig, TrainConfig
from .data import Post, load_export_posts, load_image, load_mvsa, posts_hash
from .evaluate import compute_metrics
from .features import FeatureSet, encode_posts
from .fusion import list_fusions
from .losses import LOSSES, create_loss
from .model import MultimodalClassifier

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def predict_probs(model: MultimodalClassifier, fs: FeatureSet, batch_size: int = 128, view: str = "both") -> np.ndarray:
    """(N, C) class probabilities from cached trunk features."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(fs), batch_size):
        idx = torch.arange(i, min(i + batch_size, len(fs)))
        out.append(model.forward_from_trunk(*fs.batch(idx, device), view=view).logits.softmax(-1).float().cpu())
    return torch.cat(out).numpy()


def training_posts(tcfg: TrainConfig) -> tuple[list[Post], list[Post]]:
    """(train, val) posts: MVSA train plus corrections. A correction of an MVSA post overrides its label
    (it keeps the MVSA id, so its cached features are reused); corrections of val/test posts are dropped
    so they never leak into evaluation; uploads join as new posts."""
    posts = load_mvsa(tcfg.data_dir)
    held_out = {p.id for p in posts if p.split in ("val", "test")}
    by_id = {p.id: p for p in posts}
    train = {p.id: p for p in posts if p.split == "train"}
    val = [p for p in posts if p.split == "val"]
    if tcfg.limit:  # smoke runs: a slice of MVSA, but every correction
        train = dict(list(train.items())[: tcfg.limit])
        val = val[: max(tcfg.limit // 4, 8)]
    for export in tcfg.extra_data:
        for p in load_export_posts(export):
            mvsa_id = p.source.split(":", 1)[1] if p.source.startswith("mvsa-single:") else None
            if mvsa_id in held_out:
                continue
            if mvsa_id in by_id:
                base = by_id[mvsa_id]
                train[mvsa_id] = Post(mvsa_id, base.text, base.image, p.label, "train", p.source)
            elif p.image:
                train[p.id] = p
            else:
                log.warning("skipping corrected post %s: it has no image", p.id)
    return [p for p in train.values() if p.label is not None], val


class MvsaFeatures:
    """Trunk features of any posts: MVSA posts come from one cache of the whole data set (encoded once),
    other posts (uploads in an annotation export) are encoded and cached on their own."""

    def __init__(self, model: MultimodalClassifier, tcfg: TrainConfig, progress: bool = True):
        self.model, self.cache, self.progress = model, (tcfg.cache_dir or None), progress
        self.whole = not tcfg.limit  # a smoke run on a slice encodes only that slice
        self.all = load_mvsa(tcfg.data_dir)
        self.row = {p.id: i for i, p in enumerate(self.all)}
        self.fs: FeatureSet | None = None

    def __call__(self, posts: list[Post]) -> FeatureSet:
        if not self.whole:
            return encode_posts(self.model, posts, self.cache, self.progress)
        if self.fs is None:
            self.fs = encode_posts(self.model, self.all, self.cache, self.progress)
        inside = [p for p in posts if p.id in self.row]
        outside = [p for p in posts if p.id not in self.row]
        parts = [self.fs.select(torch.tensor([self.row[p.id] for p in inside], dtype=torch.long))]
        if outside:
            parts.append(encode_posts(self.model, outside, self.cache, self.progress))
        order = [p.id for p in inside] + [p.id for p in outside]
        pos = {pid: i for i, pid in enumerate(order)}
        fs = FeatureSet.concat(parts)
        return fs.select(torch.tensor([pos[p.id] for p in posts], dtype=torch.long))


def _raw_batch(model: MultimodalClassifier, posts: list[Post], rng: random.Random, aug, device):
    """An end-to-end batch with text and image augmentation (used when ``augment`` is on)."""
    texts = [augment_text(p.text, rng) for p in posts]
    pixels = torch.stack([model.image_encoder.preprocess(aug(load_image(p.image))) for p in posts]).to(device)
    tok = model.text_encoder.tokenize(texts)
    return pixels, tok["input_ids"].to(device), tok["attention_mask"].to(device)


def fit(model: MultimodalClassifier, tcfg: TrainConfig, train_posts: list[Post], train_fs: FeatureSet,
        val_fs: FeatureSet, y_val: np.ndarray, progress: bool = True) -> tuple[dict, list[dict]]:
    """Train in place; load the best val epoch's weights back. Returns (best val metrics, epoch log)."""
    device = next(model.parameters()).device
    y_train = torch.tensor([model.labels.index(p.label) for p in train_posts])
    criterion = create_loss(tcfg.loss, y_train.numpy(), len(model.labels), tcfg.label_smoothing).to(device)
    opt = torch.optim.AdamW(model.param_groups(tcfg.lr, tcfg.encoder_lr), weight_decay=tcfg.weight_decay)
    steps_per_epoch = (len(train_posts) + tcfg.batch_size - 1) // tcfg.batch_size
    total = steps_per_epoch * tcfg.epochs
    sched = get_linear_schedule_with_warmup(opt, int(tcfg.warmup_ratio * total), total)
    gen, rng = torch.Generator().manual_seed(tcfg.seed), random.Random(tcfg.seed)
    aug = image_augmentation(model.image_encoder.image_size) if tcfg.augment else None
    best, best_state, history, stale = None, None, [], 0
    for epoch in range(1, tcfg.epochs + 1):
        model.train()
        t0, losses = time.perf_counter(), []
        order = torch.randperm(len(train_posts), generator=gen)
        bar = tqdm(range(0, len(order), tcfg.batch_size), desc=f"epoch {epoch}", disable=not progress, leave=False)
        for i in bar:
            idx = order[i:i + tcfg.batch_size]
            if aug is not None:
                out = model(*_raw_batch(model, [train_posts[j] for j in idx], rng, aug, device))
            else:
                out = model.forward_from_trunk(*train_fs.batch(idx, device))
            loss = criterion(out.logits, y_train[idx].to(device))
            if out.aux_loss is not None:
                loss = loss + out.aux_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        m = compute_metrics(y_val, predict_probs(model, val_fs).argmax(1), model.labels)
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0,
               **{k: m[k] for k in ("accuracy", "weighted_f1", "macro_f1")},
               "neutral_recall": m["per_class"].get("neutral", {}).get("recall", float("nan"))}
        history.append(row)
        log.info("epoch %d loss %.4f val acc %.2f wF1 %.2f mF1 %.2f (%.1fs)", epoch, row["train_loss"],
                 row["accuracy"], row["weighted_f1"], row["macro_f1"], row["seconds"])
        if best is None or m[tcfg.select_metric] > best[tcfg.select_metric]:
            best, best_state, stale = m, copy.deepcopy(model.trainable_state_dict()), 0
            best["epoch"] = epoch
        else:
            stale += 1
            if stale >= tcfg.patience:
                break
    model.load_trainable_state_dict(best_state)
    return best, history


def train(mcfg: ModelConfig, tcfg: TrainConfig, out: str | Path | None = None,
          progress: bool = True) -> tuple[MultimodalClassifier, dict]:
    """Train ``mcfg`` under ``tcfg``; write a checkpoint to ``out`` when given. Returns (model, record)."""
    seed_everything(tcfg.seed)
    if tcfg.num_threads:
        torch.set_num_threads(tcfg.num_threads)
    device = resolve_device(tcfg.device)
    train_posts, val_posts = training_posts(tcfg)
    model = MultimodalClassifier(mcfg).to(device)
    t0 = time.perf_counter()
    lookup = MvsaFeatures(model, tcfg, progress)
    train_fs = lookup(train_posts) if not tcfg.augment else None
    val_fs = lookup(val_posts)
    t_feat = time.perf_counter() - t0
    seed_everything(tcfg.seed)  # the cache may or may not have run: start training from the same state
    y_val = np.array([model.labels.index(p.label) for p in val_posts])
    t0 = time.perf_counter()
    best, history = fit(model, tcfg, train_posts, train_fs, val_fs, y_val, progress)
    record = {
        "metrics": {"val": best},
        "history": history,
        "train_config": asdict(tcfg),
        "data_hash": posts_hash(train_posts + val_posts),
        "n_train": len(train_posts),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_seconds": time.perf_counter() - t0,
        "feature_seconds": t_feat,
    }
    if out:
        save_checkpoint(model, out, **record)
        log.info("wrote %s", out)
    return model, record


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mscmf", help=f"one of {list_fusions()}")
    ap.add_argument("--out", default=None, help="checkpoint path (default runs/<model>-s<seed>.pt)")
    ap.add_argument("--text-encoder", default="minilm")
    ap.add_argument("--image-encoder", default="efficientnet_lite0")
    ap.add_argument("--text-layers", type=int, default=0, help="fine-tuned top text layers (-1 = all)")
    ap.add_argument("--image-blocks", type=int, default=0, help="fine-tuned top CNN stages")
    ap.add_argument("--loss", default="ce", choices=LOSSES)
    for f in fields(TrainConfig):
        if f.name in ("loss", "extra_data") or f.type not in ("int", "float", "str", "bool"):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            ap.add_argument(flag, action="store_true")
        else:
            ap.add_argument(flag, type={"int": int, "float": float, "str": str}[f.type], default=f.default)
    for f in fields(ModelConfig):
        if f.name in ("hidden_dim", "num_heads", "num_layers", "dropout", "max_text_len", "modality_dropout",
                      "mlm_weight", "mlm_mask_rate"):
            ap.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    ap.add_argument("--extra-data", action="append", default=[], help="annotation export folder (repeatable)")
    ap.add_argument("--allow-download", action="store_true", help="let hub names download (online machines)")
    return ap.parse_args(argv)


def configs_from_args(a) -> tuple[ModelConfig, TrainConfig]:
    mcfg = ModelConfig(fusion=a.model, text_encoder=a.text_encoder, image_encoder=a.image_encoder,
                       text_trainable_layers=a.text_layers, image_trainable_blocks=a.image_blocks,
                       allow_download=a.allow_download,
                       **{k: getattr(a, k) for k in ("hidden_dim", "num_heads", "num_layers", "dropout",
                                                     "max_text_len", "modality_dropout", "mlm_weight",
                                                     "mlm_mask_rate")})
    tcfg = TrainConfig(**{f.name: getattr(a, f.name) for f in fields(TrainConfig)})
    return mcfg, tcfg


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    a = parse_args(argv)
    if a.model not in list_fusions():
        raise SystemExit(f"Unknown model {a.model!r}; choose from {list_fusions()}")
    mcfg, tcfg = configs_from_args(a)
    out = a.out or f"runs/{a.model}-s{a.seed}.pt"
    _, record = train(mcfg, tcfg, out)
    v = record["metrics"]["val"]
    print(f"{a.model}: val acc {v['accuracy']:.2f} wF1 {v['weighted_f1']:.2f} macroF1 {v['macro_f1']:.2f} "
          f"(epoch {v['epoch']}, {record['train_seconds']:.0f}s) -> {out}")


if __name__ == "__main__":
    main()
