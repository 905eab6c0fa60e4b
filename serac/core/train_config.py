"""The settings of the shared training loop (`serac.core.training.train`)."""

from dataclasses import dataclass

from serac.core.setting_checks import SettingsError, check_bool

_MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass
class TrainConfig:
    """One training run. Steps count optimizer updates, not batches.

    `batch_size` is per process, so one update sees
    `batch_size * grad_accumulation * number of processes` examples.
    """

    output_dir: str
    lr: float = 1e-4
    weight_decay: float = 0.0
    batch_size: int = 8
    grad_accumulation: int = 1
    max_steps: int = 1000
    max_epochs: int | None = None
    max_grad_norm: float | None = 1.0
    warmup_steps: int = 0
    lr_decay: str = "constant"  # after warmup: "constant", or "linear" down to 0 at the last step
    val_every: int = 100
    val_batches: int | None = None  # None: the whole validation set
    early_stop_metric: str = "loss"  # a key of the algorithm's `validate` output; also picks `best/`
    early_stop_mode: str = "min"  # "min" or "max": which direction is better
    early_stop_patience: int | None = None  # validations without improvement before stopping; None: never
    # When the patience runs out, the first `lr_reductions` times the run goes on at the learning
    # rate times `lr_reduction_factor` instead of stopping: from the weights it has, or, with
    # `lr_reduction_restores_best`, from its best ones (which on a noisy validation may be a lucky draw).
    lr_reductions: int = 0
    lr_reduction_factor: float = 0.1
    lr_reduction_restores_best: bool = False
    checkpoint_every: int | None = None  # None: no checkpoints, so no resume
    resume: bool = True  # continue from output_dir/checkpoint if this run wrote one (see `train`)
    log_every: int = 10
    seed: int = 0
    tensorboard: bool = False
    plot_validation: bool = False  # redraw output_dir/validation.png after every validation
    mixed_precision: str = "no"  # "no", "fp16" or "bf16"
    # Several processes: tolerate trainable parameters the loss does not use (e.g. a BERT
    # pooler whose output is ignored), which DDP otherwise rejects; False is a little faster.
    find_unused_parameters: bool = True

    @classmethod
    def from_settings(cls, output_dir: str, settings: dict) -> "TrainConfig":
        """The config of a training run from a user's settings; a name that is no field is a SettingsError."""
        try:
            return cls(output_dir=output_dir, **settings)
        except TypeError as error:  # an unknown setting
            raise SettingsError(f"training settings for {output_dir}: {error}") from None

    def __post_init__(self):
        if not str(self.output_dir).strip():
            raise SettingsError("output_dir must name a folder")
        for name in ("batch_size", "grad_accumulation", "max_steps", "val_every", "log_every"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_epochs", "val_batches", "early_stop_patience", "checkpoint_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise SettingsError(f"{name} must be None or at least 1, got {getattr(self, name)}")
        if self.lr_reductions < 0:
            raise SettingsError(f"lr_reductions must not be negative, got {self.lr_reductions}")
        if not 0 < self.lr_reduction_factor < 1:
            raise SettingsError(f"lr_reduction_factor must be between 0 and 1 (exclusive), got {self.lr_reduction_factor}")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise SettingsError("lr must be positive; weight_decay and warmup_steps must not be negative")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise SettingsError(f"max_grad_norm must be None or positive, got {self.max_grad_norm}")
        for name in ("resume", "tensorboard", "plot_validation", "find_unused_parameters", "lr_reduction_restores_best"):
            check_bool(getattr(self, name), name)
        if self.lr_decay not in ("constant", "linear"):
            raise SettingsError(f"lr_decay must be 'constant' or 'linear', got {self.lr_decay!r}")
        if self.early_stop_mode not in ("min", "max"):
            raise SettingsError(f"early_stop_mode must be 'min' or 'max', got {self.early_stop_mode!r}")
        if self.mixed_precision not in _MIXED_PRECISION:
            raise SettingsError(f"mixed_precision must be one of {_MIXED_PRECISION}, got {self.mixed_precision!r}")
