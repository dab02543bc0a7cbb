"""Config dataclasses. They travel inside every checkpoint, so a model rebuilds from what it stores."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model (encoders + fusion head)."""

    fusion: str = "concat"  # registry name, see mmsa_core.list_models()
    text_encoder: str = "minilm"  # alias (minilm, tiny-bert) or a Hugging Face hub name / local path
    image_encoder: str = "efficientnet_lite0"  # efficientnet_lite0|efficientnet_lite2|resnet50|tiny-cnn
    labels: tuple[str, ...] = LABELS  # order of the logits
    hidden_dim: int = 256  # width of the fusion head
    num_heads: int = 4  # attention heads in attention/transformer fusions
    num_layers: int = 1  # transformer layers in transformer-style fusions
    dropout: float = 0.1  # dropout inside the head
    max_text_len: int = 64  # tokens per post; MVSA tweets are at most 140 characters
    text_trainable_layers: int = 0  # top transformer layers of the text encoder that are fine-tuned (-1 = all)
    text_lora_rank: int = 0  # > 0: those layers train LoRA adapters of this rank instead of all their weights
    image_trainable_blocks: int = 0  # top blocks of the CNN that are fine-tuned (0 = frozen)
    image_mid_stage: int = 0  # > 0: this CNN stage's map, pooled to the top's grid, joins the top's channels
    modality_dropout: float = 0.0  # training-time chance to blank one modality (teaches the one-modality views)
    mlm_weight: float = 0.0  # weight of the auxiliary masked-token loss (mscmf only)
    mlm_mask_rate: float = 0.25  # share of text tokens masked for the auxiliary loss (most image-like first)
    aux_modality_weight: float = 0.0  # weight of the per-modality label losses (text_label, image_label heads)
    joint_label_weight: float = 0.0  # > 0: a head on the fused features learns the (text_label, image_label) pair
    logit_bias: tuple[float, ...] = ()  # added to the logits at inference, one per label (``mmsa_core.calibrate``)
    allow_download: bool = False  # let hub names download when online; offline by default

    def to_dict(self) -> dict:
        d = asdict(self)
        d["labels"] = list(self.labels)
        d["logit_bias"] = list(self.logit_bias)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"Unknown ModelConfig fields {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        for key in ("labels", "logit_bias"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


@dataclass
class TrainConfig:
    """How a model is trained; stored beside the model config for the record."""

    data_dir: str = "../shared/data/mvsa-single"  # MVSA-Single folder (posts.csv + images/)
    epochs: int = 20  # upper bound; early stopping on val usually ends sooner
    batch_size: int = 32
    lr: float = 1e-3  # head learning rate (AdamW)
    encoder_lr: float = 5e-5  # learning rate of the top fine-tuned encoder layer
    layer_decay: float = 1.0  # each fine-tuned layer below the top learns this much slower (LLRD)
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06  # linear warm-up share of all steps, then linear decay
    patience: int = 4  # epochs without a better val score before stopping
    early_stopping: bool = True  # False: run every epoch and keep the last (cross-validation, final refits)
    bucket_by_length: bool = False  # batches of similar text length: less padding when text layers train
    select_metric: str = "weighted_f1"  # val metric used for early stopping and checkpoint choice
    loss: str = "ce"  # ce | weighted_ce | focal | adaptive
    label_smoothing: float = 0.0
    teacher: str = ""  # checkpoint (an ensemble, say) whose probabilities on the training posts are also learned
    distill_weight: float = 1.0  # weight of the KL divergence to the teacher's probabilities (with ``teacher``)
    supcon_weight: float = 0.0  # > 0: a supervised contrastive loss on the fused features (CLMLF's label-based one)
    supcon_temperature: float = 0.1
    rdrop_weight: float = 0.0  # > 0: R-Drop, two dropout passes per batch and their symmetric KL times this
    ema_decay: float = 0.0  # > 0: keep an exponential moving average of the weights and end on it
    seed: int = 0  # data order, dropout, and the new weights' initial values unless init_seed is set
    init_seed: int = -1  # >= 0: the new weights start from this seed instead (runs that differ only in data
    #                      order and dropout, as a weight average of several runs needs)
    augment: bool = False  # text/image augmentation (only when encoders run end to end)
    augment_images: bool = True  # with augment: False keeps the cached image features and edits only the texts
    aug_contrast_weight: float = 0.0  # > 0 (texts-only augment): CLMLF's data-based contrast, post vs its edited copy
    extra_data: list[str] = field(default_factory=list)  # annotation exports merged into train
    train_on_val: bool = False  # the final refit: MVSA val trains too (no val holdout left; choose by CV first)
    cache_dir: str = ""  # feature cache ("" = $MMSA_CACHE_DIR or ./data/cache)
    limit: int = 0  # use only the first N train/val posts (smoke tests)
    num_threads: int = 0  # torch CPU threads (0 = torch default)
    device: str = "auto"  # auto | cpu | cuda

    def __post_init__(self):
        if self.aug_contrast_weight > 0 and not (self.augment and not self.augment_images):
            raise ValueError("aug_contrast_weight contrasts each post with its edited copy: it needs augment=True and "
                             "augment_images=False (the post itself comes from the feature cache)")
        if self.train_on_val and self.early_stopping:
            raise ValueError("train_on_val leaves no val posts to stop early on: set early_stopping=False "
                             "(--no-early-stopping) and a fixed number of epochs")

    @classmethod
    def from_saved(cls, d: dict) -> "TrainConfig":
        """The training config a checkpoint stored (``train_config``); fields this version does not know (a
        checkpoint written by another version) are left out."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def model_seed(self) -> int:
        """The seed the model's new weights (heads, classifier) are drawn with."""
        return self.init_seed if self.init_seed >= 0 else self.seed

    @property
    def decodes_images(self) -> bool:
        """Whether training decodes and jitters the images every step (augment with augment_images), so that
        nothing comes from the feature cache."""
        return self.augment and self.augment_images
