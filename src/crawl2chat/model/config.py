"""How a GPT is trained, and what training writes: :class:`TrainCfg` and file names.

In: the ``train`` subsection of the ``base`` / ``sft`` params (built by
:func:`crawl2chat.config.build`). Out: a validated :class:`TrainCfg` for
:func:`crawl2chat.model.train.fit` and the modules it drives (the LightningModule, the
optimizer, the Lightning Trainer factory); and the names of the files ``fit`` leaves in
its output folder, for the stages' reports and quality gates to find without importing
training code. The defaults are ``conf/base/default.yaml``'s ``train`` block (a test in
``tests/test_config.py`` holds the two equal); ``conf/sft`` sets where SFT differs.
"""

from __future__ import annotations

from dataclasses import dataclass

from crawl2chat.errors import ConfigError

LOSS_CURVE = "loss_curve.png"
TRAIN_LOG = "train_log.jsonl"
TRAIN_SAMPLES = "train_samples.jsonl"
SAMPLES = "samples.json"  # the base stage's samples from its fixed prompts after training
SCHEDULES = ("cosine", "wsd")
STRATEGIES = ("auto", "ddp", "fsdp")


@dataclass
class TrainCfg:
    """How to train; the ``train`` subsection of the ``base`` / ``sft`` params."""

    lr: float = 1e-3  # peak learning rate, reached after warmup
    min_lr: float = 1e-4  # end of the cosine decay (GPT-3 / nanoGPT: lr / 10)
    warmup_steps: int = 30  # linear warmup, in optimizer steps
    max_steps: int = 300  # optimizer steps in all
    batch_size: int = 16  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step (tokens/step = this x batch x T)
    weight_decay: float = 0.1  # AdamW decay on matrices; biases and norms are not decayed
    beta1: float = 0.9
    beta2: float = 0.95
    optimizer: str = "adamw"  # adamw | muon (Muon on block matrices, AdamW on the rest)
    muon_lr: float = 0.02  # Muon's peak lr; the schedule scales it as it scales lr
    muon_momentum: float = 0.95
    grad_clip: float = 1.0  # clip the global grad norm to this; 0 turns clipping off
    tokens_per_step: int | None = None  # all ranks together; sets grad_accum when given
    schedule: str = "cosine"  # cosine | wsd (warmup, stable, linear decay)
    decay_fraction: float = 0.2  # wsd: share of max_steps spent decaying to min_lr
    eval_every: int = 50  # optimizer steps between validations (and samples)
    eval_batches: int = 8  # micro-batches per validation
    log_every: int = 10  # optimizer steps between logged rows (loss, lr, grad norm, MFU)
    precision: str = "auto"  # Lightning precision, or auto: see crawl2chat.model.precision
    seed: int = 1337  # weights, data order, dropout: the same seed, the same model
    num_workers: int = 0  # DataLoader workers; 0 leaves both cores of a laptop to the model
    compile: bool | None = None  # torch.compile the model; None: where CUDA is
    strategy: str = "auto"  # Lightning strategy: auto | ddp | fsdp
    devices: int = 1  # processes per node (GPUs, or CPU processes under ddp); -1: all GPUs
    num_nodes: int = 1
    deterministic: bool = False  # deterministic kernels: bit-identical reruns and resumes
    checkpoint_every: int = 100  # optimizer steps between checkpoints; 0: none
    resume: bool = True  # continue from the last checkpoint when there is one
    peak_flops: float | None = None  # per device, for MFU; None: the device table's
    progress_bar: bool = True

    def __post_init__(self) -> None:
        for name, value, allowed in (("schedule", self.schedule, SCHEDULES),
                                     ("strategy", self.strategy, STRATEGIES)):
            if value not in allowed:
                raise ConfigError(f"train.{name} must be one of {', '.join(allowed)}, "
                                  f"got {value!r}")
        if not 0.0 <= self.decay_fraction <= 1.0:
            raise ConfigError(f"train.decay_fraction must be in [0, 1], "
                              f"got {self.decay_fraction}")
        for name in ("max_steps", "batch_size", "grad_accum", "log_every", "eval_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be positive, got {getattr(self, name)}")
