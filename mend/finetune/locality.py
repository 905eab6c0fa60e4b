"""FT+KL's anchor: the unedited model's output distributions on a pool of locality prompts.

The pool comes from the config (`locality_prompts`) or the editor's constructor. It should
be drawn from data the edits are not evaluated on (e.g. NQ questions or the training split's
locality prompts), never from the evaluated edit's own locality prompts.
"""

import torch
import torch.nn.functional as F

from serac.core.data import load_records
from serac.core.language_model import IGNORE, LanguageModel
from serac.core.lower_blocks import LowerBlockStates

# How far each locality prompt's answer is followed: the KL is taken at every answer position.
ANSWER_TOKENS = 8


class LocalityAnchor:
    """Remembers the unedited model's token distributions on the locality prompts' answers.

    Each prompt is continued by the unedited model's own greedy answer (teacher forced), so
    the KL covers the next-token distribution right after the prompt and a few tokens beyond.
    Build it before any edit: it records the model as it is at construction.
    """

    def __init__(self, language_model: LanguageModel, prompts: list[str]):
        if not prompts:
            raise ValueError(
                "the KL penalty needs locality prompts: pass locality_prompts=[...] or set config.locality_prompts"
            )
        self.language_model = language_model
        answers = language_model.generate(prompts, max_new_tokens=ANSWER_TOKENS)
        # An empty greedy answer (the model starts with a line break) still has a next-token
        # distribution worth keeping: the end-of-text token stands in for the answer.
        eos = language_model.tokenizer.eos_token
        self.batch = language_model.batch(prompts, [answer or eos for answer in answers])
        with torch.no_grad():
            logits, labels = language_model.target_logits(self.batch, target_columns_only=True)
        self.base_logprobs = torch.log_softmax(logits.float(), dim=-1)
        self.mask = labels != IGNORE

    def kl(self, lower: LowerBlockStates | None = None) -> torch.Tensor:
        """Mean over answer positions of KL(unedited || current model), differentiable (`lower`: the
        outputs of the blocks below the trained ones for `self.batch`, see `serac.core.lower_blocks`)."""
        logits, _ = self.language_model.target_logits(self.batch, lower=lower, target_columns_only=True)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        per_position = F.kl_div(logprobs, self.base_logprobs, log_target=True, reduction="none").sum(-1)
        return per_position[self.mask].mean()


def training_locality_prompts(dataset: str, train_split: str, count: int, data_dir=None) -> list[str]:
    """The first `count` distinct locality prompts of a training split: a pool disjoint from the evaluated edits."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"locality_pool_size must be an int >= 1, got {count!r}")
    prompts: dict[str, None] = {}
    for record in load_records(dataset, train_split, data_dir):
        prompts.update(dict.fromkeys(record.locality_prompts))
        if len(prompts) >= count:
            return list(prompts)[:count]
    if not prompts:
        raise ValueError(f"{dataset}/{train_split} has no locality prompts to anchor FT+KL; set alg.ft_kl.locality_prompts")
    return list(prompts)
