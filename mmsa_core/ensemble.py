"""Ensembles: several trained models that share their frozen encoder parts, probabilities averaged.

    python -m mmsa_core.ensemble runs/a.pt runs/b.pt runs/c.pt --out mmsa_core/weights/default.pt [--greedy]
    python -m mmsa_core.ensemble runs/a.pt --storage int8-delta --out small.pt   # one model: a compact copy
    python -m mmsa_core.ensemble runs/s0.pt runs/s1.pt runs/s2.pt --average-weights --out soup.pt  # one model

``--average-weights`` writes one model whose weights are the runs' mean (runs of one recipe and one
``--init-seed``, different ``--seed``s): one model's compute instead of the members' sum.

With ``--greedy`` members are chosen by forward selection on ``val`` (Caruana et al. 2004), so the val
figure of the result is optimistic; the members' own val figures are stored beside it.
"""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import FORMAT, read_checkpoint, trained_on_val, write_checkpoint
from .compress import FORMAT as INT8
from .compress import compress_state, decompress_state
from .config import ModelConfig, TrainConfig
from .encoders import ImageFeatures, TextFeatures
from .encoders.image import stage_channels
from .model import ModelOutput, MultimodalClassifier, pretrained_reference

log = logging.getLogger(__name__)
STORAGES = ("float32", "float16", INT8)


class EnsembleTextEncoder(nn.Module):
    """The members' text encoders as one module: the frozen trunk they all share runs once, then each
    distinct top (the pretrained upper layers that frozen members share, and each fine-tuned member's own
    layers); the tokens are the tops' outputs side by side, (B, L, D * n_tops).

    It offers the ``TextEncoder`` seam (``forward_trunk``, ``forward_top``, ``features``, ``forward``,
    ``tokenize``, ``tokenizer``, ``word_embeddings``), so caching, prediction and explanations treat the
    ensemble like one model; ``EnsembleClassifier.head`` hands each member its own slice.
    """

    def __init__(self, owner, tops: list[nn.ModuleList]):
        super().__init__()
        self.owner, self.tops = owner, nn.ModuleList(tops)
        self.split, self.width = owner.split, owner.dim
        self.dim = owner.dim * len(tops)

    def __getattr__(self, name):  # name, max_len, tokenizer, model, layers, pretrained, ... of the trunk
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("owner"), name)

    def forward_trunk(self, input_ids, mask, inputs_embeds=None) -> torch.Tensor:
        return self.owner.forward_trunk(input_ids, mask, inputs_embeds=inputs_embeds)

    def forward_top(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.owner.run_layers(top, hidden, mask) for top in self.tops], -1)

    def features(self, tokens, mask, input_ids=None) -> TextFeatures:
        return self.owner.features(tokens, mask, input_ids)  # a masked mean: any width

    def forward(self, input_ids, mask) -> TextFeatures:
        return self.features(self.forward_top(self.forward_trunk(input_ids, mask), mask), mask, input_ids)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.owner.tokenize(texts)

    def slice(self, text: TextFeatures, k: int) -> TextFeatures:
        a, b = k * self.width, (k + 1) * self.width
        return TextFeatures(text.tokens[..., a:b], text.mask, text.pooled[..., a:b], text.input_ids)


class ParallelStage(nn.Module):
    """The same depth of several members' own top CNN stages, run side by side: the input is either the
    shared trunk's output (the first top stage) or the previous parallel stage's channels side by side
    (split back per member); the outputs go side by side along the channels. Grad-CAM can hook it like
    any stage."""

    def __init__(self, stages: list[nn.Module], in_widths: list[int] | None):
        super().__init__()
        self.parts, self.in_widths = nn.ModuleList(stages), in_widths

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, h, w) -> (B, sum C_out, h', w')
        inputs = [x] * len(self.parts) if self.in_widths is None else x.split(self.in_widths, dim=1)
        return torch.cat([stage(t) for stage, t in zip(self.parts, inputs)], 1)


class EnsembleImageEncoder(nn.Module):
    """The members' image encoders as one module: the stages they share run once, then each distinct top
    (a member's own fine-tuned stages) as ``ParallelStage``s; regions and pooled features are the tops'
    side by side, (B, R, C * n_tops). It offers the ``ImageEncoder`` seam (``stages``, ``target_layer``,
    ``forward_trunk``, ``forward_top``, ``features``, ``preprocess``, ...), so caching, prediction and
    Grad-CAM treat the ensemble like one model; ``EnsembleClassifier.head`` hands each member its slice."""

    def __init__(self, owner, tops: list[list[nn.Module]]):
        super().__init__()
        self.owner, self.split, self.width = owner, owner.split, owner.dim
        depth = len(tops[0])
        widths = None
        parallel = []
        for d in range(depth):
            parallel.append(ParallelStage([top[d] for top in tops], widths))
            widths = [stage_channels(top[d]) for top in tops]
        self.stages = nn.ModuleList([*owner.stages[: owner.split], *parallel])
        self.dim = owner.dim * len(tops)

    def __getattr__(self, name):  # name, preprocess, image_size, pretrained, frozen_top, ... of the owner
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("owner"), name)

    @property
    def target_layer(self) -> nn.Module:
        return self.stages[-1]

    def forward_trunk(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.owner.forward_trunk(pixels)

    def forward_top(self, fmap: torch.Tensor) -> torch.Tensor:
        for stage in self.stages[self.split:]:
            fmap = stage(fmap)
        return fmap

    def features(self, fmap: torch.Tensor):
        return self.owner.features(fmap)  # regions and their mean: any width

    def forward(self, pixels: torch.Tensor):
        return self.features(self.forward_top(self.forward_trunk(pixels)))

    def slice(self, image: ImageFeatures, k: int) -> ImageFeatures:
        a, b = k * self.width, (k + 1) * self.width
        return ImageFeatures(image.regions[..., a:b], image.pooled[..., a:b])

    def train(self, mode: bool = True):
        super().train(mode)
        self.owner.train(mode)
        return self


class EnsembleClassifier(nn.Module):
    """Averages the members' probabilities; what their encoders share runs once.

    Members must use the same encoders, text length and labels. Their encoders may fine-tune different
    numbers of top layers (text) or stages (CNN): what lies below the lowest fine-tuned one is the shared
    trunk (cached in training, run once in inference), frozen parts above it are shared too, and each
    fine-tuned member runs its own top (``EnsembleTextEncoder``, ``EnsembleImageEncoder``).

    It offers the members' common seam (``text_encoder``, ``image_encoder``, ``head``, ``forward``,
    ``forward_from_trunk``, ``labels``), so prediction and explanations treat it like one model.
    """

    def __init__(self, members: list[MultimodalClassifier]):
        super().__init__()
        first = members[0]
        if any(m.image_encoder.mid_stage for m in members):  # its top joins a lower map: no stage-wise sharing
            raise ValueError("Models with image_mid_stage (a screened setting, not adopted) cannot be ensembled")
        for m in members[1:]:
            same = (m.cfg.text_encoder, m.cfg.image_encoder, m.cfg.max_text_len, m.labels) == (
                first.cfg.text_encoder, first.cfg.image_encoder, first.cfg.max_text_len, first.labels)
            if not same:
                raise ValueError("Ensemble members must share encoders, text length and labels")
        owner = min(members, key=lambda m: m.text_encoder.split)
        image_owner = min(members, key=lambda m: m.image_encoder.split)
        pool: dict[int, nn.Module] = {}
        image_pool: dict[int, nn.Module] = {}
        for m in members:
            _share_trunk(m, owner, pool, image_owner, image_pool)
        tops, self.top_of = {}, []
        for m in members:  # members whose upper layers are the same modules share one top
            key = tuple(id(layer) for layer in m.text_encoder.layers[owner.text_encoder.split:])
            if key not in tops:
                tops[key] = (len(tops), nn.ModuleList(m.text_encoder.layers[owner.text_encoder.split:]))
            self.top_of.append(tops[key][0])
        image_tops, self.image_top_of = {}, []
        cut = image_owner.image_encoder.split
        for m in members:  # members whose top stages are the same modules (frozen ones) share one top
            key = tuple(id(stage) for stage in m.image_encoder.stages[cut:])
            if key not in image_tops:
                image_tops[key] = (len(image_tops), list(m.image_encoder.stages[cut:]))
            self.image_top_of.append(image_tops[key][0])
        self.members = nn.ModuleList(members)
        self.text_encoder = EnsembleTextEncoder(owner.text_encoder, [t for _, t in tops.values()])
        self.image_encoder = (image_owner.image_encoder if len(image_tops) == 1 else
                              EnsembleImageEncoder(image_owner.image_encoder, [t for _, t in image_tops.values()]))
        names = "+".join(dict.fromkeys(m.cfg.fusion for m in members))
        self.cfg = replace(first.cfg, fusion=f"ensemble:{names}")  # describes the whole; members keep their own

    @property
    def labels(self) -> tuple[str, ...]:
        return self.members[0].labels

    @staticmethod
    def _average(outs: list[ModelOutput]) -> ModelOutput:
        probs = torch.stack([o.logits.softmax(-1) for o in outs]).mean(0)  # (B, C)
        return ModelOutput(probs.clamp_min(1e-12).log(), None, _mean([o.text_attention for o in outs]),
                           _mean([o.image_attention for o in outs]))

    def head(self, text: TextFeatures, image) -> ModelOutput:
        """Averaged heads on encoded features (``text`` from this ensemble's ``text_encoder``)."""
        images = ([self.image_encoder.slice(image, k) for k in self.image_top_of]
                  if isinstance(self.image_encoder, EnsembleImageEncoder) else [image] * len(self.members))
        return self._average([m.head(self.text_encoder.slice(text, k), im)
                              for m, k, im in zip(self.members, self.top_of, images)])

    def forward_from_trunk(self, text_hidden, text_mask, input_ids, image_trunk, view: str = "both") -> ModelOutput:
        text = self.text_encoder.features(self.text_encoder.forward_top(text_hidden, text_mask), text_mask, input_ids)
        image = self.image_encoder.features(self.image_encoder.forward_top(image_trunk))
        return self.head(*self.members[0]._view(text, image, view))

    def forward(self, pixels, input_ids, mask, view: str = "both") -> ModelOutput:
        hidden = self.text_encoder.forward_trunk(input_ids, mask)
        return self.forward_from_trunk(hidden, mask, input_ids, self.image_encoder.forward_trunk(pixels), view)


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return torch.stack(xs).mean(0) if xs else None


def _share_trunk(member: MultimodalClassifier, owner: MultimodalClassifier, pool: dict[int, nn.Module],
                 image_owner: MultimodalClassifier, image_pool: dict[int, nn.Module]) -> None:
    """Point the member's frozen modules at one copy each, so they exist (and run) once."""
    member.text_encoder.model.embeddings = owner.text_encoder.model.embeddings
    for i in range(member.text_encoder.split):  # pretrained, frozen: the same weights in every member
        member.text_encoder.layers[i] = pool.setdefault(i, member.text_encoder.layers[i])
    for i in range(member.image_encoder.split):
        member.image_encoder.stages[i] = image_pool.setdefault(i, member.image_encoder.stages[i])


def build_member(ckpt: dict) -> MultimodalClassifier:
    model = MultimodalClassifier(ModelConfig.from_dict(ckpt["config"]))
    state = ckpt["state_dict"]
    if ckpt.get("storage") == INT8:  # fine-tuned encoder weights stored as int8 deltas from the pretrained ones
        state = decompress_state(state, pretrained_reference(model))
    model.load_trainable_state_dict(state)
    return model.eval()


def stored_member(path: str | Path, storage: str = "float32") -> dict:
    """A member checkpoint read from ``path``, its weights as an ensemble stored in ``storage`` holds them."""
    ckpt = read_checkpoint(path)
    if ckpt.get("kind") == "ensemble":
        raise ValueError(f"{path} is already an ensemble")
    return {**as_stored(ckpt, storage), "source": Path(path).name}


def load_member(path: str | Path, storage: str = "float32") -> MultimodalClassifier:
    """A member from its checkpoint, with its weights as an ensemble stored in ``storage`` would hold them."""
    return build_member(stored_member(path, storage))


def member_probs(models: list[MultimodalClassifier], posts, data_dir: str) -> list[np.ndarray]:
    """Each model's (N, C) probabilities on MVSA ``posts``; models that cut the encoders at the same
    place share one feature set."""
    from .features import MvsaFeatures, predict_probs

    features, probs = {}, []
    for m in models:
        key = (m.cfg.text_encoder, m.text_encoder.split, m.cfg.max_text_len, m.cfg.image_encoder, m.image_encoder.split)
        if key not in features:
            features[key] = MvsaFeatures(m, data_dir, progress=False)(posts)
        probs.append(predict_probs(m, features[key]))
    return probs


def save_ensemble(paths: list[str | Path], out: str | Path, storage: str = "float32", **meta) -> Path:
    """One file holding every member's checkpoint (config + trainable weights + metrics).

    ``storage``: ``float32``; ``float16`` (half the file; the weights load back into float32 models); or
    ``int8-delta`` (fine-tuned encoder weights as int8 deltas from the pretrained ones, the rest float16;
    see ``compress``)."""
    return write_ensemble([stored_member(p, storage) for p in paths], out, storage, **meta)


def write_ensemble(members: list[dict], out: str | Path, storage: str, **meta) -> Path:
    """``save_ensemble`` for members already in their stored form (``stored_member``). One member is written
    as a plain model checkpoint (its weights in ``storage``), which loads as a ``MultimodalClassifier``."""
    first = members[0]
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if len(members) == 1:
        # an int8-delta checkpoint stays int8-delta whatever was asked (``as_stored``): say what the file holds
        ckpt = {**first, "stored_dtype": first.get("storage", storage), "created_at": created, **meta}
    else:
        ckpt = {"format": FORMAT, "kind": "ensemble", "config": first["config"], "labels": first["labels"],
                "encoders": first["encoders"], "members": members,
                "train_config": first.get("train_config", {}), "data_hash": first.get("data_hash", ""),
                "trainable_params": sum(m.get("trainable_params", 0) for m in members),
                "stored_dtype": storage, "created_at": created, **meta}
    return write_checkpoint(ckpt, out)


def average_weights(ckpts: list[dict], sources: list[str] | None = None) -> dict:
    """One model whose trainable weights are the mean of several runs' (a uniform "model soup", Wortsman et al.
    2022): the compute of one model. A mean of weights is only a good model when the runs started from the same
    weights, so they must share the config and the initial weights (the pretrained encoders and the same
    ``init_seed``), differing in data order and dropout (``seed``) only."""
    if len(ckpts) < 2:
        raise ValueError("A weight average needs at least two runs")
    first = ckpts[0]
    for c in ckpts:
        if c.get("kind") == "ensemble":
            raise ValueError("A weight average takes single runs, not ensembles")
        if c["config"] != first["config"]:
            raise ValueError("Runs of different configs cannot be averaged: their weights do not correspond")
    inits = {TrainConfig.from_saved(c.get("train_config", {})).model_seed for c in ckpts}
    if len(inits) > 1:
        raise ValueError(f"These runs started from different weights (init seeds {sorted(inits)}): train them with "
                         "one --init-seed and different --seed values to average them")
    states = [decompress_state(c["state_dict"], pretrained_reference(MultimodalClassifier(ModelConfig.from_dict(
        c["config"])))) if c.get("storage") == INT8 else c["state_dict"] for c in ckpts]
    if any(set(st) != set(states[0]) for st in states):
        raise ValueError("The runs do not hold the same weights")
    mean = {k: (torch.stack([st[k].float() for st in states]).mean(0).to(states[0][k].dtype)
                if states[0][k].is_floating_point() else states[0][k]) for k in states[0]}
    meta = {k: v for k, v in first.items() if k not in ("state_dict", "storage", "metrics", "source")}
    return {**meta, "state_dict": mean, "metrics": {},
            "averaged_from": [{"source": name, "seed": c.get("train_config", {}).get("seed"),
                               "data_hash": c.get("data_hash", "")}
                              for name, c in zip(sources or [str(i) for i in range(len(ckpts))], ckpts)]}


def greedy_select(member_probs: list[np.ndarray], y: np.ndarray, max_size: int = 7, metric=None) -> list[int]:
    """Forward selection with replacement: add the member that most improves the metric; stop when none does."""
    from sklearn.metrics import f1_score

    metric = metric or (lambda p: f1_score(y, p.argmax(1), average="weighted"))
    chosen, best = [], -1.0
    while len(chosen) < max_size:
        scores = [metric(np.mean([member_probs[j] for j in chosen + [i]], 0)) for i in range(len(member_probs))]
        i = int(np.argmax(scores))
        if scores[i] <= best:
            break
        chosen.append(i)
        best = scores[i]
    return chosen


def swap_estimate(member_probs: list[np.ndarray], y: np.ndarray, seed: int = 0) -> float:
    """Accuracy of greedy selection measured honestly: select on one half of val, score on the other,
    and the other way round (a 2-fold swap); the mean tells how much the selection overfits val."""
    idx = np.random.default_rng(seed).permutation(len(y))
    halves, accs = (idx[: len(y) // 2], idx[len(y) // 2:]), []
    for a, b in (halves, halves[::-1]):
        chosen = greedy_select([p[a] for p in member_probs], y[a])
        accs.append(float((np.mean([member_probs[i][b] for i in chosen], 0).argmax(1) == y[b]).mean()))
    return 100 * float(np.mean(accs))


def as_stored(ckpt: dict, storage: str) -> dict:
    """A member checkpoint with its weights as ``save_ensemble(storage=...)`` stores them."""
    if ckpt.get("storage") == INT8:  # stored compactly already: it loads back the same, so it stays so
        return ckpt
    if storage == "float32":
        return ckpt
    if storage == "float16":
        return {**ckpt, "state_dict": {k: v.half() if v.is_floating_point() else v
                                       for k, v in ckpt["state_dict"].items()}}
    if storage == INT8:
        reference = pretrained_reference(MultimodalClassifier(ModelConfig.from_dict(ckpt["config"])))
        return {**ckpt, "storage": INT8, "state_dict": compress_state(ckpt["state_dict"], reference)}
    raise ValueError(f"Unknown storage {storage!r}; choose from {list(STORAGES)}")


def main(argv=None) -> None:
    from .data import load_mvsa
    from .evaluate import compute_metrics, format_metrics

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--greedy", action="store_true", help="choose members by forward selection on val")
    ap.add_argument("--storage", default="float32", choices=STORAGES,
                    help="how the weights are stored (val is scored as stored)")
    ap.add_argument("--half", dest="storage", action="store_const", const="float16", help="= --storage float16")
    ap.add_argument("--data-dir", default="../shared/data/mvsa-single")
    ap.add_argument("--average-weights", action="store_true",
                    help="one model: the mean of the runs' weights (same recipe and --init-seed)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.average_weights:
        if a.greedy:
            raise SystemExit("--greedy chooses ensemble members; --average-weights averages all the runs given")
        try:
            soup = average_weights([read_checkpoint(p) for p in a.checkpoints], [Path(p).name for p in a.checkpoints])
        except ValueError as e:
            raise SystemExit(str(e)) from None
        soup = as_stored(soup, a.storage)
        if trained_on_val(soup):
            print("the runs trained on MVSA val, so val is not scored (their estimate is the recipe's cross-validation)")
        else:
            val = [p for p in load_mvsa(a.data_dir) if p.split == "val"]
            model = build_member(soup)
            y = np.array([model.labels.index(p.label) for p in val])
            m = compute_metrics(y, member_probs([model], val, a.data_dir)[0].argmax(1), model.labels)
            print(format_metrics(m))
            soup["metrics"] = {"val": {**m, "epoch": 0}}
        write_ensemble([soup], a.out, a.storage)
        print(f"wrote {a.out}: the mean of {len(a.checkpoints)} runs' weights")
        return
    stored = [stored_member(p, a.storage) for p in a.checkpoints]  # read and converted once: scored, then saved
    if any(trained_on_val(m) for m in stored):  # the final refit: val would score in-sample
        if a.greedy:
            raise SystemExit("--greedy chooses members on val, but these members trained on MVSA val")
        write_ensemble(stored, a.out, a.storage, metrics={"selection": "all"})
        print(f"members trained on MVSA val, so val is not scored (their estimate is the recipe's cross-validation)"
              f"\nwrote {a.out}")
        return
    models = [build_member(m) for m in stored]
    val = [p for p in load_mvsa(a.data_dir) if p.split == "val"]
    y = np.array([models[0].labels.index(p.label) for p in val])
    probs = member_probs(models, val, a.data_dir)
    chosen = greedy_select(probs, y) if a.greedy else list(range(len(models)))
    paths = [a.checkpoints[i] for i in chosen]
    m = compute_metrics(y, np.mean([probs[i] for i in chosen], 0).argmax(1), models[0].labels)
    members_val = [compute_metrics(y, probs[i].argmax(1), models[0].labels)["accuracy"] for i in range(len(models))]
    print("members:", paths)
    print(format_metrics(m))
    m["epoch"] = 0
    if a.greedy:
        m["swap_estimate_accuracy"] = swap_estimate(probs, y)
        print(f"greedy selection scored on the other half of val (2-fold swap): accuracy "
              f"{m['swap_estimate_accuracy']:.2f}")
    write_ensemble([stored[i] for i in chosen], a.out, a.storage,
                   metrics={"val": m, "selection": "greedy on val" if a.greedy else "all",
                            "members_val_accuracy": dict(zip(a.checkpoints, members_val))})
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
