"""Train a model on MVSA-Single (plus annotation exports) and write a self-describing checkpoint.

    python -m mmsa_core.train --model mscmf --out runs/mscmf.pt [--text-layers 2] [--loss adaptive] ...

Frozen encoder parts run once and are cached on disk; only the head (and the fine-tuned top layers)
train, with AdamW and a linear warm-up/decay schedule. By default early stopping picks the epoch on
``val``; ``--no-early-stopping`` runs every epoch and keeps the last, so val chooses nothing (how the
shipped default and the cross-validation runs are trained). ``--teacher CKPT`` adds distillation.
"""
from __future__ import annotations

import argparse
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from .augment import augment_text, image_augmentation
from .checkpoint import file_sha256, load_model, save_checkpoint
from .config import ModelConfig, TrainConfig
from .data import Post, held_out_splits, load_export_posts, load_image, load_mvsa, posts_hash
from .device import resolve_device
from .evaluate import compute_metrics
from .features import FeatureSet, MvsaFeatures, predict_probs
from .fusion import list_fusions
from .losses import LOSSES, create_loss
from .model import MultimodalClassifier

log = logging.getLogger(__name__)
IGNORE = -100  # target of a post whose per-modality label is unknown


def supervised_contrastive(temperature: float):
    """Supervised contrastive loss (Khosla et al. 2020), as CLMLF (Li et al. 2022) adds it to cross-entropy on
    the fused features: from pytorch-metric-learning, whose cosine similarity L2-normalises them itself."""
    from pytorch_metric_learning.losses import SupConLoss

    return SupConLoss(temperature=temperature)


def paired_contrastive(temperature: float):
    """CLMLF's data-based contrast (NT-Xent, Chen et al. 2020): each post's fused features and those of its
    augmented copy are a positive pair, every other post in the batch a negative. pytorch-metric-learning's
    NTXentLoss, given both views with the post's index as the label."""
    from pytorch_metric_learning.losses import NTXentLoss

    loss = NTXentLoss(temperature=temperature)

    def pair_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ids = torch.arange(len(a), device=a.device)
        return loss(torch.cat([a, b]), torch.cat([ids, ids]))

    return pair_loss


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """R-Drop's regulariser (Liang et al. 2021): the mean of KL(a || b) and KL(b || a), per post."""
    la, lb = logits_a.log_softmax(-1), logits_b.log_softmax(-1)
    return (F.kl_div(la, lb, log_target=True, reduction="batchmean")
            + F.kl_div(lb, la, log_target=True, reduction="batchmean")) / 2


def averaged_model(model: MultimodalClassifier, decay: float):
    """An exponential moving average of ``model``'s weights, updated after every step (torch's AveragedModel;
    buffers follow the model)."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_posts(tcfg: TrainConfig) -> tuple[list[Post], list[Post]]:
    """(train, val) posts: MVSA train plus corrections. A correction of an MVSA post overrides its label
    (it keeps the MVSA id, so its cached features are reused); corrections of val/test posts are dropped
    so they never leak into evaluation; uploads join as new posts. With ``train_on_val`` (the final refit)
    MVSA val joins train, corrections of val posts count like those of train posts, and val comes back empty."""
    posts = load_mvsa(tcfg.data_dir)
    held_out = {p.id for p in posts if p.split in held_out_splits(tcfg.train_on_val)}
    by_id = {p.id: p for p in posts}
    train = {p.id: p for p in posts if p.split == "train"}
    val = [p for p in posts if p.split == "val"]
    if tcfg.limit:  # smoke runs: a slice of MVSA, but every correction
        train = dict(list(train.items())[: tcfg.limit])
        val = val[: max(tcfg.limit // 4, 8)]
    if tcfg.train_on_val:
        train.update({p.id: p for p in val})
        val = []
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


def batch_order(lengths: torch.Tensor, batch_size: int, gen: torch.Generator, bucket: bool) -> list[torch.Tensor]:
    """One epoch's batches of row indices. With ``bucket``, rows are shuffled, then sorted by text length
    inside windows of 50 batches, and the batches are shuffled again: each batch holds texts of similar
    length, so trimming to its longest text removes most padding, while the epoch stays random."""
    order = torch.randperm(len(lengths), generator=gen)
    if bucket:
        window = 50 * batch_size
        chunks = [order[i:i + window] for i in range(0, len(order), window)]
        order = torch.cat([c[torch.argsort(lengths[c], stable=True)] for c in chunks])
    batches = list(order.split(batch_size))
    if bucket:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=gen)]
    return batches


def _edited_tokens(model: MultimodalClassifier, posts: list[Post], rng: random.Random, device):
    """(ids, mask) of the posts' texts after one EDA edit each."""
    tok = model.text_encoder.tokenize([augment_text(p.text, rng) for p in posts])
    return tok["input_ids"].to(device), tok["attention_mask"].to(device)


def _raw_batch(model: MultimodalClassifier, posts: list[Post], rng: random.Random, aug, device):
    """An end-to-end batch with text and image augmentation (``augment`` with ``augment_images``)."""
    ids, mask = _edited_tokens(model, posts, rng, device)
    pixels = torch.stack([model.image_encoder.preprocess(aug(load_image(p.image))) for p in posts]).to(device)
    return pixels, ids, mask


def _text_augmented(model: MultimodalClassifier, posts: list[Post], image_trunk: torch.Tensor, rng: random.Random,
                    device):
    """A batch whose texts are edited (EDA) and re-encoded while the images keep their cached trunk outputs
    (``augment`` without ``augment_images``): the text side's augmentation at about the cost of no augmentation."""
    ids, mask = _edited_tokens(model, posts, rng, device)
    n = int(mask.sum(1).max())  # trimmed to the longest text, as cached batches are
    ids, mask = ids[:, :n], mask[:, :n]
    with torch.no_grad():  # the text trunk is frozen, as when it is cached
        hidden = model.text_encoder.forward_trunk(ids, mask)
    return hidden, mask, ids, image_trunk


def _targets(model: MultimodalClassifier, posts: list[Post], attr: str) -> torch.Tensor:
    return torch.tensor([model.labels.index(getattr(p, attr)) if getattr(p, attr) else IGNORE for p in posts])


def joint_targets(y_text: torch.Tensor, y_image: torch.Tensor, n_labels: int) -> torch.Tensor:
    """(N,) the (text_label, image_label) pair as one of n_labels**2 classes, text-major; IGNORE where either
    label is unknown. MVSA derives a post's label from this pair, so the pair says which modality carries it."""
    known = (y_text != IGNORE) & (y_image != IGNORE)
    return torch.where(known, y_text * n_labels + y_image, torch.full_like(y_text, IGNORE))


def teacher_probs(path: str, posts: list[Post], labels: tuple[str, ...], tcfg: TrainConfig,
                  progress: bool = True) -> torch.Tensor:
    """(N, C) probabilities of the checkpoint at ``path`` on ``posts`` (the targets of distillation), from the
    same feature cache training uses: a teacher that cuts the encoders where the student does shares its
    features, so no image is decoded twice."""
    teacher, _ = load_model(path, device=resolve_device(tcfg.device))
    if tuple(teacher.labels) != tuple(labels):
        raise ValueError(f"The teacher {path} predicts {list(teacher.labels)}, the model {list(labels)}")
    lookup = MvsaFeatures(teacher, tcfg.data_dir, tcfg.cache_dir or None, progress, whole=not tcfg.limit)
    return torch.from_numpy(predict_probs(teacher, lookup(posts)))


def fit(model: MultimodalClassifier, tcfg: TrainConfig, train_posts: list[Post], train_fs: FeatureSet | None,
        val_fs: FeatureSet | None, y_val: np.ndarray | None, progress: bool = True,
        hook: Callable[[float], None] | None = None, soft: torch.Tensor | None = None) -> tuple[dict, list[dict]]:
    """Train in place. With early stopping, the best val epoch's weights are loaded back; without it
    every epoch runs and the last weights stay (``val_fs`` then only records the learning curve, and may
    be None). ``hook(fraction done)`` is called every few batches (progress bars; it may raise to stop).
    ``soft`` (N, C): a teacher's probabilities, learned besides the labels (``tcfg.distill_weight`` times
    the KL divergence; Hinton et al. 2015 at temperature 1). With ``tcfg.ema_decay`` the weights scored
    and kept are the moving average's; with ``tcfg.rdrop_weight`` each batch runs twice (R-Drop).
    Returns (val metrics of the kept weights, or {} without val; epoch log)."""
    device = next(model.parameters()).device
    y_train = _targets(model, train_posts, "label")
    y_text, y_image = _targets(model, train_posts, "text_label"), _targets(model, train_posts, "image_label")
    y_joint = joint_targets(y_text, y_image, len(model.labels))
    criterion = create_loss(tcfg.loss, y_train.numpy(), len(model.labels), tcfg.label_smoothing).to(device)
    supcon = supervised_contrastive(tcfg.supcon_temperature) if tcfg.supcon_weight > 0 else None
    pair = paired_contrastive(tcfg.supcon_temperature) if tcfg.aug_contrast_weight > 0 else None
    opt = torch.optim.AdamW(model.param_groups(tcfg.lr, tcfg.encoder_lr, tcfg.layer_decay),
                            weight_decay=tcfg.weight_decay)
    steps_per_epoch = (len(train_posts) + tcfg.batch_size - 1) // tcfg.batch_size
    total = steps_per_epoch * tcfg.epochs
    sched = get_linear_schedule_with_warmup(opt, int(tcfg.warmup_ratio * total), total)
    gen, rng = torch.Generator().manual_seed(tcfg.seed), random.Random(tcfg.seed)
    aug = image_augmentation(model.image_encoder.image_size) if tcfg.decodes_images else None
    lengths = train_fs.lengths if train_fs is not None else torch.ones(len(train_posts))
    ema = averaged_model(model, tcfg.ema_decay) if tcfg.ema_decay > 0 else None
    kept = ema.module if ema is not None else model  # the weights that are scored on val and kept

    def objective(out, idx: torch.Tensor) -> torch.Tensor:
        """The batch loss of one forward pass: labels, and whatever else this config learns."""
        loss = criterion(out.logits, y_train[idx].to(device))
        if soft is not None:
            loss = loss + tcfg.distill_weight * F.kl_div(out.logits.log_softmax(-1), soft[idx].to(device),
                                                         reduction="batchmean")
        if supcon is not None:  # posts of one label pull together, others push apart, in the fused space
            loss = loss + tcfg.supcon_weight * supcon(out.features, y_train[idx].to(device))
        if out.aux_loss is not None:
            loss = loss + out.aux_loss
        if out.modality_logits is not None:
            for logits, y in zip(out.modality_logits, (y_text[idx], y_image[idx])):
                if (y != IGNORE).any():
                    loss = loss + model.cfg.aux_modality_weight * F.cross_entropy(
                        logits, y.to(device), ignore_index=IGNORE)
        if out.joint_logits is not None:
            y = y_joint[idx]
            if (y != IGNORE).any():
                loss = loss + model.cfg.joint_label_weight * F.cross_entropy(out.joint_logits, y.to(device),
                                                                            ignore_index=IGNORE)
        return loss

    best, best_state, history, stale = None, None, [], 0
    for epoch in range(1, tcfg.epochs + 1):
        model.train()
        t0, losses = time.perf_counter(), []
        batches = batch_order(lengths, tcfg.batch_size, gen, tcfg.bucket_by_length and aug is None)
        bar = tqdm(batches, desc=f"epoch {epoch}", disable=not progress, leave=False)
        for b, idx in enumerate(bar):
            if hook is not None and b % 10 == 0:
                hook((epoch - 1 + b / len(batches)) / tcfg.epochs)
            if aug is not None:
                forward, inputs = model, _raw_batch(model, [train_posts[j] for j in idx], rng, aug, device)
            else:
                forward, inputs = model.forward_from_trunk, train_fs.batch(idx, device)
                if tcfg.augment:  # texts only: the images stay cached
                    edited = _text_augmented(model, [train_posts[j] for j in idx], inputs[3], rng, device)
                    if pair is None:  # learn the labels from the edited copy; with the contrast, from the post
                        inputs = edited
            out = forward(*inputs)
            loss = objective(out, idx)
            if pair is not None:  # CLMLF's data-based contrast: a post and its edited copy pull together
                loss = loss + tcfg.aug_contrast_weight * pair(out.features, forward(*edited).features)
            if tcfg.rdrop_weight > 0:  # R-Drop: a second pass under other dropout masks; both must agree
                out2 = forward(*inputs)
                loss = (loss + objective(out2, idx)) / 2 + tcfg.rdrop_weight * symmetric_kl(out.logits, out2.logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0}
        m = None
        if val_fs is not None and len(val_fs):
            m = compute_metrics(y_val, predict_probs(kept, val_fs).argmax(1), model.labels)
            row.update({k: m[k] for k in ("accuracy", "weighted_f1", "macro_f1")},
                       neutral_recall=m["per_class"].get("neutral", {}).get("recall", float("nan")))
            log.info("epoch %d loss %.4f val acc %.2f wF1 %.2f mF1 %.2f (%.1fs)", epoch, row["train_loss"],
                     row["accuracy"], row["weighted_f1"], row["macro_f1"], row["seconds"])
        else:
            log.info("epoch %d loss %.4f (%.1fs)", epoch, row["train_loss"], row["seconds"])
        history.append(row)
        if not tcfg.early_stopping:
            best = {**m, "epoch": epoch} if m is not None else {}
            continue
        if m is None:
            raise ValueError("Early stopping needs validation posts; set early_stopping=False to train a fixed "
                             "number of epochs")
        if best is None or m[tcfg.select_metric] > best[tcfg.select_metric]:
            best, best_state, stale = m, kept.trainable_state_dict(), 0
            best["epoch"] = epoch
        else:
            stale += 1
            if stale >= tcfg.patience:
                break
    if best_state is None and ema is not None:  # no early stopping: end on the averaged weights
        best_state = kept.trainable_state_dict()
    if best_state is not None:
        model.load_trainable_state_dict(best_state)
    return best, history


def train_on_posts(model: MultimodalClassifier, tcfg: TrainConfig, train_posts: list[Post], val_posts: list[Post],
                   lookup, out: str | Path | None = None, progress: bool = True,
                   hook: Callable[[float], None] | None = None, soft: torch.Tensor | None = None) -> dict:
    """Train ``model`` (fresh or warm-started) on ``train_posts``, judged on ``val_posts`` (may be empty
    when ``early_stopping`` is off); ``lookup(posts) -> FeatureSet`` gives cached trunk features.
    ``soft``: a teacher's (N, C) probabilities on ``train_posts`` (default: ``tcfg.teacher``'s, if set).
    Writes a checkpoint to ``out`` when given. Returns the training record."""
    t0 = time.perf_counter()
    train_fs = lookup(train_posts) if not tcfg.decodes_images else None
    val_fs = lookup(val_posts) if val_posts else None
    if soft is None and tcfg.teacher:
        soft = teacher_probs(tcfg.teacher, train_posts, model.labels, tcfg, progress)
    t_feat = time.perf_counter() - t0
    seed_everything(tcfg.seed)  # the cache may or may not have run: start training from the same state
    y_val = np.array([model.labels.index(p.label) for p in val_posts]) if val_posts else None
    t0 = time.perf_counter()
    best, history = fit(model, tcfg, train_posts, train_fs, val_fs, y_val, progress, hook, soft)
    record = {
        "metrics": {"val": best} if best else {},
        "history": history,
        "train_config": asdict(tcfg),
        "data_hash": posts_hash(train_posts + val_posts),
        "n_train": len(train_posts),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "teacher_sha256": file_sha256(tcfg.teacher) if tcfg.teacher else "",
        "train_seconds": time.perf_counter() - t0,
        "feature_seconds": t_feat,
    }
    if out:
        save_checkpoint(model, out, **record)
        log.info("wrote %s", out)
    return record


def train(mcfg: ModelConfig, tcfg: TrainConfig, out: str | Path | None = None,
          progress: bool = True) -> tuple[MultimodalClassifier, dict]:
    """Train ``mcfg`` under ``tcfg`` on MVSA train (+ exports), judged on val; write a checkpoint to ``out``
    when given. Returns (model, record)."""
    seed_everything(tcfg.model_seed)
    if tcfg.num_threads:
        torch.set_num_threads(tcfg.num_threads)
    train_posts, val_posts = training_posts(tcfg)
    model = MultimodalClassifier(mcfg).to(resolve_device(tcfg.device))
    lookup = MvsaFeatures(model, tcfg.data_dir, tcfg.cache_dir or None, progress, whole=not tcfg.limit)
    return model, train_on_posts(model, tcfg, train_posts, val_posts, lookup, out, progress)


TRAIN_HELP = {"teacher": "checkpoint (an ensemble, say) whose probabilities the model also learns (distillation)",
              "distill_weight": "weight of the KL divergence to the teacher's probabilities (with --teacher)",
              "supcon_weight": "> 0: add a supervised contrastive loss on the fused features, this much of it",
              "supcon_temperature": "temperature of that contrastive loss",
              "rdrop_weight": "> 0: R-Drop, each batch twice under other dropout masks, plus this times their KL",
              "train_on_val": "the final refit: MVSA val trains too, so nothing is left to judge on (with "
                              "--no-early-stopping; choose every setting by cross-validation first)",
              "init_seed": ">= 0: draw the new weights with this seed, not --seed (runs for a weight average)",
              "ema_decay": "> 0: end on an exponential moving average of the weights (e.g. 0.99 per step)",
              "augment_images": "with --augment: edit only the texts; the images keep their cached features",
              "aug_contrast_weight": "> 0 (--augment --no-augment-images): contrast each post with its edited copy"}
MODEL_FLAGS = ("hidden_dim", "num_heads", "num_layers", "dropout", "max_text_len", "modality_dropout", "mlm_weight",
               "mlm_mask_rate", "aux_modality_weight", "joint_label_weight")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mscmf", help=f"one of {list_fusions()}")
    ap.add_argument("--out", default=None, help="checkpoint path (default runs/<model>-s<seed>.pt)")
    ap.add_argument("--text-encoder", default="minilm")
    ap.add_argument("--image-encoder", default="efficientnet_lite0")
    ap.add_argument("--text-layers", type=int, default=0, help="fine-tuned top text layers (-1 = all)")
    ap.add_argument("--image-blocks", type=int, default=0, help="fine-tuned top CNN stages")
    ap.add_argument("--loss", default="ce", choices=LOSSES)
    ap.add_argument("--no-early-stopping", dest="early_stopping", action="store_false",
                    help="run every epoch and keep the last weights")
    for f in fields(TrainConfig):
        if f.name in ("loss", "extra_data", "early_stopping") or f.type not in ("int", "float", "str", "bool"):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool" and f.default:  # on by default: the flag turns it off
            ap.add_argument("--no-" + flag[2:], dest=f.name, action="store_false", help=TRAIN_HELP.get(f.name))
        elif f.type == "bool":
            ap.add_argument(flag, action="store_true", help=TRAIN_HELP.get(f.name))
        else:
            ap.add_argument(flag, type={"int": int, "float": float, "str": str}[f.type], default=f.default,
                            help=TRAIN_HELP.get(f.name))
    for f in fields(ModelConfig):
        if f.name in MODEL_FLAGS:
            ap.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    ap.add_argument("--extra-data", action="append", default=[], help="annotation export folder (repeatable)")
    ap.add_argument("--allow-download", action="store_true", help="let hub names download (online machines)")
    return ap.parse_args(argv)


def configs_from_args(a) -> tuple[ModelConfig, TrainConfig]:
    mcfg = ModelConfig(fusion=a.model, text_encoder=a.text_encoder, image_encoder=a.image_encoder,
                       text_trainable_layers=a.text_layers, image_trainable_blocks=a.image_blocks,
                       allow_download=a.allow_download,
                       **{k: getattr(a, k) for k in MODEL_FLAGS})
    tcfg = TrainConfig(**{f.name: getattr(a, f.name) for f in fields(TrainConfig)})
    return mcfg, tcfg


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    a = parse_args(argv)
    if a.model not in list_fusions():
        raise SystemExit(f"Unknown model {a.model!r}; choose from {list_fusions()}")
    try:
        mcfg, tcfg = configs_from_args(a)
    except ValueError as e:  # settings that do not go together
        raise SystemExit(str(e)) from None
    out = a.out or f"runs/{a.model}-s{a.seed}.pt"
    _, record = train(mcfg, tcfg, out)
    v = record["metrics"].get("val")
    if not v:
        print(f"{a.model}: trained {len(record['history'])} epochs ({record['train_seconds']:.0f}s) -> {out}")
        return
    print(f"{a.model}: val acc {v['accuracy']:.2f} wF1 {v['weighted_f1']:.2f} macroF1 {v['macro_f1']:.2f} "
          f"(epoch {v['epoch']}, {record['train_seconds']:.0f}s) -> {out}")


if __name__ == "__main__":
    main()
