"""SERAC's counterfactual model: answers an in-scope query given the retrieved edit.

It is an ordinary language model that reads the edit and the query in one input. Trained
on (edit, in-scope query, edit answer) triples, it learns to answer paraphrases of the
edited question (and, for dialogue edits, to reply in the requested trait or sentiment).
"""

from torch import Tensor

from serac.core.language_model import LanguageModel, TargetScore


def counterfactual_input(edit_prompt: str, edit_target: str, query: str) -> str:
    """The counterfactual model's input for `query` under the edit `edit_prompt` -> `edit_target`."""
    return f"[Edit] {edit_prompt} {edit_target}\n[Query] {query}"


class CounterfactualModel:
    def __init__(self, language_model: LanguageModel):
        self.lm = language_model

    def score(self, edits: list[tuple[str, str]], queries: list[str], targets: list[str]) -> list[TargetScore]:
        return self.lm.score(self._inputs(edits, queries), targets)

    def target_logprobs(self, edits: list[tuple[str, str]], queries: list[str], targets: list[str]) -> list[Tensor]:
        return self.lm.target_logprobs(self._inputs(edits, queries), targets)

    def generate(self, edits: list[tuple[str, str]], queries: list[str], max_new_tokens: int) -> list[str]:
        return self.lm.generate(self._inputs(edits, queries), max_new_tokens=max_new_tokens)

    def batch(self, edits: list[tuple[str, str]], queries: list[str], targets: list[str]):
        # The answer ends with EOS so generation knows where to stop.
        return self.lm.batch(self._inputs(edits, queries), targets, append_eos=True)

    @staticmethod
    def _inputs(edits: list[tuple[str, str]], queries: list[str]) -> list[str]:
        return [counterfactual_input(prompt, target, query) for (prompt, target), query in zip(edits, queries)]
