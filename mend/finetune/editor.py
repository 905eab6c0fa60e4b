"""The fine-tuning editors: FT, FT+KL and FT-L are one editor with different configs.

Each `add_edits` call is one fine-tuning run on all its (prompt, target) pairs together;
successive calls keep training the already edited weights, so edits accumulate.

The state is one delta per trained weight (`serac.core.delta_editor.DeltaEditor`): reset is
bit-exact, and `remove_edit` is exact by reset + replay, since fine-tuning entangles edits
(every later run starts from the weights the earlier ones left), so subtracting one edit's
weight change would not give the model the other edits were trained from.
"""

from collections.abc import Sequence
from dataclasses import replace
from typing import ClassVar

from mend.finetune.config import FTConfig, FTKLConfig, FTLConfig
from mend.finetune.fine_tune import fine_tune
from mend.finetune.locality import LocalityAnchor, training_locality_prompts
from mend.finetune.trainable_parameters import select_trainable_parameters
from serac.core.composed_config import method_config
from serac.core.delta_editor import DeltaEditor
from serac.core.language_model import LanguageModel
from serac.core.models import load_language_model
from serac.core.records import EditRequest
from serac.core.setting_checks import settle_prompt_format


class FTEditor(DeltaEditor):
    """Edits by fine-tuning some of the model's weights (see `FTConfig`) on the edit pairs.

    The editor owns `language_model`'s weights: it freezes every parameter it does not train
    and writes the trained ones in place. Its state is one delta per trained weight: the model
    always holds exactly `unedited + delta`, which is what `load` rebuilds from the saved
    deltas, so a saved editor reloads bit for bit.
    """

    name: ClassVar[str] = "ft"
    config_class: ClassVar[type[FTConfig]] = FTConfig

    def __init__(
        self, language_model: LanguageModel, config: FTConfig | None = None, locality_prompts: Sequence[str] | None = None
    ):
        config = config if config is not None else self.config_class()
        if type(config) is not self.config_class:
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        if locality_prompts is not None:
            config = replace(config, locality_prompts=list(locality_prompts))
        self.config = settle_prompt_format(config, language_model)
        self.language_model = language_model
        language_model.model.eval()  # dropout would make an edit, and its replay by remove_edit, irreproducible
        self.trainable = select_trainable_parameters(language_model.model, config.parameter_pattern, config.layers)
        for parameter in language_model.model.parameters():
            parameter.requires_grad_(False)
        for parameter in self.trainable.values():
            parameter.requires_grad_(True)
        self.track_weights(self.trainable)
        self.locality = LocalityAnchor(language_model, config.locality_prompts) if config.kl_weight > 0 else None

    @classmethod
    def from_pretrained(
        cls, model_name: str, config: FTConfig | None = None, device=None, locality_prompts: Sequence[str] | None = None
    ) -> "FTEditor":
        """An editor of the named model (`serac.core.models` resolves the name, offline first)."""
        config = replace(config if config is not None else cls.config_class(), model_name=model_name)
        return cls(load_language_model(model_name, device, config.prompt_format), config, locality_prompts)

    @classmethod
    def from_config(cls, config: dict) -> "FTEditor":
        """The editor of the composed CLI config: the model from `model`, the rest from `alg.<name>`."""
        method = method_config(cls.config_class, config, cls.name)
        return cls.from_pretrained(method.model_name, method, device=config.get("device"))

    # Editing

    def apply_batch(self, requests: list[EditRequest]) -> None:
        """One fine-tuning run on the batch's (prompt, target) pairs, from the current weights."""
        batch = self.language_model.batch([request.prompt for request in requests], [request.target for request in requests])
        fine_tune(self.language_model, batch, self.trainable, self.unedited, self.config, self.locality)
        deltas = {name: parameter.detach() - self.unedited[name] for name, parameter in self.trainable.items()}
        if self.config.norm_constraint is not None:
            # Rounding in `unedited + delta` must not carry a weight out of FT-L's ball.
            epsilon = self.config.norm_constraint
            deltas = {name: delta.clamp(-epsilon, epsilon) for name, delta in deltas.items()}
        self.set_deltas(deltas)


class FTKLEditor(FTEditor):
    """FT+KL: FT plus a KL penalty keeping the outputs on a pool of locality prompts unchanged.

    The pool is `config.locality_prompts`, or `locality_prompts=[...]` given to the
    constructor / `from_pretrained` (which replaces the config's). From the CLI, an empty
    `alg.ft_kl.locality_prompts` is filled with `alg.locality_pool_size` locality prompts of
    the experiment's training split, so the pool never overlaps the evaluated edits. The KL
    is always to the unedited model, also after many sequential edits.
    """

    name: ClassVar[str] = "ft_kl"
    config_class: ClassVar[type[FTConfig]] = FTKLConfig

    @classmethod
    def from_config(cls, config: dict) -> "FTKLEditor":
        method = method_config(cls.config_class, config, cls.name)
        if not method.locality_prompts:
            experiment = config["experiment"]
            pool = training_locality_prompts(
                experiment["dataset"], experiment["train_split"], config["alg"]["locality_pool_size"], config.get("data_dir")
            )
            method = replace(method, locality_prompts=pool)
        return cls.from_pretrained(method.model_name, method, device=config.get("device"))


class FTLEditor(FTEditor):
    """FT-L: fine-tune one layer with every weight kept within +-epsilon of its unedited value."""

    name: ClassVar[str] = "ft_l"
    config_class: ClassVar[type[FTConfig]] = FTLConfig
