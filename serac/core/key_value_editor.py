"""What ROME and MEMIT editors share: a `DeltaEditor` of MLP matrices, edited at the subject.

A subclass says which matrices it edits (`edited_module_names`) and how a batch of edits
changes them (`compute_updates`, with the keys, values and statistics of the core steps);
`DeltaEditor` keeps the deltas, exact reset, replay removal and save/load; this base adds:

- every edit needs a subject that occurs in its prompt;
- the prefixes (`context_prefixes`) and the statistics C (`layer_statistics`) are computed on
  first use, always from the unedited weights, and reused.
"""

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from serac.core import nethook
from serac.core.composed_config import method_config
from serac.core.context_prefixes import generate_prefixes, prefixed_prompts
from serac.core.delta_editor import DeltaEditor
from serac.core.key_value_config import KeyValueConfig
from serac.core.language_model import LanguageModel
from serac.core.layer_statistics import second_moments
from serac.core.models import load_language_model
from serac.core.records import EditRequest
from serac.core.setting_checks import settle_prompt_format
from serac.core.subject_tokens import check_subject, last_subject_token


@dataclass(frozen=True)
class EditContext:
    """One edit as the steps see it: its prompts (bare + prefixed) with the subject's last token in each,
    and its KL prompts with theirs."""

    request: EditRequest
    prompts: list[str]
    positions: list[int]
    kl_prompts: list[str]
    kl_positions: list[int]


class KeyValueEditor(DeltaEditor, ABC):
    """Base of ROME and MEMIT (see the module docstring)."""

    name: ClassVar[str]
    config_class: ClassVar[type[KeyValueConfig]]

    def __init__(self, language_model: LanguageModel, config: KeyValueConfig | None = None):
        config = config if config is not None else self.config_class()
        if type(config) is not self.config_class:
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = settle_prompt_format(config, language_model)
        self.language_model = language_model
        language_model.model.eval()  # dropout would make an edit, and its replay by remove_edit, irreproducible
        self.modules = {name: nethook.get_module(language_model.model, name) for name in self.edited_module_names()}
        self.track_weights({name: module.weight for name, module in self.modules.items()})
        self._prefixes: list[str] | None = None
        self._second_moments: dict[str, torch.Tensor] | None = None

    @classmethod
    def from_pretrained(cls, model_name: str, config: KeyValueConfig | None = None, device=None) -> "KeyValueEditor":
        """An editor of the named model (`serac.core.models` resolves the name, offline first)."""
        config = replace(config if config is not None else cls.config_class(), model_name=model_name)
        return cls(load_language_model(model_name, device, config.prompt_format), config)

    @classmethod
    def from_config(cls, config: dict) -> "KeyValueEditor":
        """The editor of the composed CLI config: the model from `model`, the rest from `alg.<name>`."""
        method = method_config(cls.config_class, config, cls.name)
        if method.data_dir is None and config.get("data_dir"):
            method = replace(method, data_dir=config["data_dir"])
        return cls.from_pretrained(method.model_name, method, device=config.get("device"))

    # What a method says

    @abstractmethod
    def edited_module_names(self) -> list[str]:
        """Dotted names of the linear modules this editor rewrites."""

    @abstractmethod
    def compute_updates(self, edits: list[EditContext]) -> None:
        """Apply the batch `edits` to the weights through `add_update` (the model holds the earlier edits)."""

    # What the steps use

    def prefixes(self) -> list[str]:
        if self._prefixes is None:
            with self._unedited_weights():
                self._prefixes = generate_prefixes(
                    self.language_model, self.config.num_prefixes, self.config.prefix_length, self.config.prefix_seed
                )
        return self._prefixes

    def second_moments(self) -> dict[str, torch.Tensor]:
        """C = E[k kᵀ] of each edited module's input, from the unedited weights (disk-cached)."""
        if self._second_moments is None:
            with self._unedited_weights():
                self._second_moments = second_moments(
                    self.language_model, list(self.modules), self.config.text_sample(), self.config.model_name
                )
        return self._second_moments

    @torch.no_grad()
    def add_update(self, name: str, update: torch.Tensor) -> None:
        """Add an [out, in] update to the named module's weight (laid out for Linear or Conv1D)."""
        delta = self._deltas[name] + nethook.in_weight_layout(self.modules[name], update).to(self._deltas[name])
        self.set_deltas({**self._deltas, name: delta})

    # Editing

    def check_requests(self, requests: list[EditRequest]) -> None:
        """Each edit needs a subject that occurs in its prompt (else a ValueError naming it)."""
        for index, request in enumerate(requests):
            check_subject(request.prompt, request.subject, f"edit {index} ({request.prompt!r})")

    def apply_batch(self, requests: list[EditRequest]) -> None:
        self.compute_updates([self._context(request) for request in requests])

    def _context(self, request: EditRequest) -> EditContext:
        prompts = prefixed_prompts(request.prompt, self.prefixes())
        kl_prompts = [template.replace("{}", request.subject) for template in self.config.kl_prompts]
        return EditContext(
            request,
            prompts,
            [last_subject_token(self.language_model, prompt, request.subject) for prompt in prompts],
            kl_prompts,
            [last_subject_token(self.language_model, prompt, request.subject) for prompt in kl_prompts],
        )

    @contextmanager
    def _unedited_weights(self):
        deltas = self._deltas
        self.set_deltas({name: torch.zeros_like(weight) for name, weight in self.unedited.items()})
        try:
            yield
        finally:
            self.set_deltas(deltas)
