"""Edit success against drawdown as the size of a single edit's weight update grows:
a plain gradient step on MEND's edited matrices, and (with --mend) a trained MEND editor
with its step sizes α scaled.

    .venv/bin/python benchmarks/mend/edit_frontier.py [--mend outputs/mend/editor] [--records 50]

Each of the first --records zsRE dev edits is made alone on SmolLM2-135M-Instruct and
undone. The gradient step is ΔW = −η ∇W NLL(edit target) over the MLP matrices of the last
3 blocks (MEND's default), with η set so that the update's norm is a given fraction of
theirs (‖ΔW‖_F / ‖W‖_F over all of them). MEND's rows report the same relative norm, measured.
Edit and rephrase success are exact matches of the target; drawdown is the fraction of the
edits' NQ locality answers whose argmax changes at any token, locality_token the share of their
tokens whose argmax is unchanged (`serac.core.metrics`).

Where the drawdown comes from: each locality answer's margin is the smallest gap, over its
tokens, between the unedited model's top two log-probabilities (teacher forced); the last two
columns split the drawdown between answers of margin under --margin nats (the model nearly
undecided at some token) and the rest.

    .venv/bin/python benchmarks/mend/edit_frontier.py --mend outputs/mend_full/editor \
        --no-gradient-steps --alpha-scales 0.25 0.5 0.75 1 --records 100

An experiment beyond the paper (--key-whitening TOKENS): ROME's principle applied to each
token's rank-1 share of MEND's update, at edit time and without retraining. MEND's share
δ'ũᵀ changes the layer's output on the token's own input h by δ'(ũ·h); among the input
directions that change it by exactly as much, ũ' = (ũ·h) C⁻¹h / (hᵀC⁻¹h) disturbs least
the inputs of ordinary text, C = E[kkᵀ] being the layer's uncentred input second moment over
TOKENS tokens of `serac.core.layer_statistics` (the sample ROME and MEMIT use), shrunk by
WHITENING_SHRINKAGE towards its mean variance (ROME inverts C itself, from 100k tokens). The edit's
effect on its own tokens is MEND's; what changes is how far it reaches beyond them.
"""

import argparse
import statistics
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from mend import MENDEditor
from mend.mend.compute_gradient_factors import GradientFactors
from mend.mend.config import MENDConfig
from mend.mend.edited_modules import edited_modules
from serac.core import metrics, nethook
from serac.core.data import load_records
from serac.core.language_model import LanguageModel
from serac.core.layer_statistics import TextSample, second_moments
from serac.core.models import load_language_model
from serac.core.records import EditRecord

GRADIENT_STEP_SIZES = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)  # ‖ΔW‖ / ‖W‖
MEND_ALPHA_SCALES = (0.25, 0.5, 1.0, 2.0)
WHITENING_SHRINKAGE = 0.1  # C is whitened as (1 - s) C + s · mean variance · I


def relative_norm(weights: dict[str, torch.Tensor], unedited: dict[str, torch.Tensor]) -> float:
    change = sum((weights[name] - unedited[name]).pow(2).sum() for name in weights)
    return (change / sum(w.pow(2).sum() for w in unedited.values())).sqrt().item()


@dataclass
class UneditedLocality:
    """A record's locality answers under the unedited model: their scores and each answer's margin."""

    scores: list
    margins: list[float]


def unedited_locality(lm: LanguageModel, records: list[EditRecord]) -> list[UneditedLocality]:
    """Each record's locality answers under the unedited model, measured once for every setting."""
    result = []
    for record in records:
        prompts, answers = list(record.locality_prompts), list(record.locality_answers)
        top_two = [logprobs.topk(2, dim=-1).values for logprobs in lm.target_logprobs(prompts, answers)]
        margins = [(top[:, 0] - top[:, 1]).min().item() for top in top_two]
        result.append(UneditedLocality(lm.score(prompts, answers), margins))
    return result


def measure(lm: LanguageModel, record: EditRecord, before: UneditedLocality, edit, undo) -> dict:
    """Edit/rephrase success and locality of one edit made by `edit()`; `undo()` restores the model.

    `edit` returns the relative norm of the update it made.
    """
    size = edit()
    after = lm.score(list(record.locality_prompts), list(record.locality_answers))
    result = {
        "relative_norm": size,
        "edit": metrics.edit_success(lm.score([record.prompt], [record.target])),
        "rephrase": metrics.edit_success(lm.score(list(record.rephrases), [record.target] * len(record.rephrases))),
        "locality_token": metrics.token_locality(before.scores, after),
        "changed": [  # (unedited margin, argmax changed at some token) per locality answer
            (margin, not torch.equal(b.predicted_ids, a.predicted_ids))
            for margin, b, a in zip(before.margins, before.scores, after)
        ],
    }
    undo()
    return result


def gradient_step(lm: LanguageModel, weights: dict[str, torch.Tensor], record: EditRecord, step_norm: float) -> None:
    """W -= η ∇W NLL, with η such that ‖ΔW‖_F over all `weights` is `step_norm`."""
    with torch.enable_grad():
        grads = torch.autograd.grad(lm.nll(lm.batch([record.prompt], [record.target])), list(weights.values()))
    norm_g = sum(g.pow(2).sum() for g in grads).sqrt().item()
    with torch.no_grad():
        for weight, grad in zip(weights.values(), grads):
            weight.sub_(grad, alpha=step_norm / norm_g)


def _share(flags: list[bool]) -> str:
    return f"{statistics.fmean(flags):.3f} (n={len(flags)})" if flags else "-"


def summarise(label: str, setting: str, rows: list[dict], margin: float) -> str:
    mean = {key: statistics.fmean(row[key] for row in rows) for key in ("relative_norm", "edit", "rephrase", "locality_token")}
    changed = [pair for row in rows for pair in row["changed"]]
    drawdown = statistics.fmean(flag for _, flag in changed)
    low, high = [flag for m, flag in changed if m < margin], [flag for m, flag in changed if m >= margin]
    return (f"| {label} | {setting} | {mean['relative_norm']:.4f} | {mean['edit']:.3f} | {mean['rephrase']:.3f} | "
            f"{drawdown:.3f} | {mean['locality_token']:.3f} | {_share(low)} | {_share(high)} |")


def gradient_step_rows(model_name: str, records: list[EditRecord], margin: float) -> Iterator[str]:
    lm = load_language_model(model_name)
    lm.model.requires_grad_(False)
    names = edited_modules(lm.model, MENDConfig(model_name=model_name))
    weights = {name: nethook.get_module(lm.model, name).weight for name in names}
    unedited = {name: weight.detach().clone() for name, weight in weights.items()}
    for weight in weights.values():
        weight.requires_grad_(True)

    norm_w = sum(w.pow(2).sum() for w in unedited.values()).sqrt().item()
    locality_before = unedited_locality(lm, records)

    def restore():
        with torch.no_grad():
            for name, weight in weights.items():
                weight.copy_(unedited[name])

    def step(record, size):
        gradient_step(lm, weights, record, size * norm_w)
        return size

    for size in GRADIENT_STEP_SIZES:
        rows = [measure(lm, r, before, lambda r=r: step(r, size), restore) for r, before in zip(records, locality_before)]
        yield summarise("gradient step", f"η: ‖ΔW‖/‖W‖ = {size:g}", rows, margin)


def whiten_update_inputs(editor: MENDEditor, tokens: int) -> None:
    """Make `editor`'s updates use ũ' = (ũ·h) C⁻¹h / (hᵀC⁻¹h) per token (see the module's docstring)."""
    names = editor.config.edit_modules
    moments = second_moments(editor.language_model, names, TextSample(tokens=tokens), editor.config.model_name)
    inverses = {}
    for name, moment in moments.items():
        moment = moment.double()
        # Shrunk towards its mean variance: C from a few thousand tokens is near singular in ~1,500
        # dimensions, and C⁻¹ would blow up the directions the sample never visits.
        isotropic = moment.diagonal().mean() * torch.eye(len(moment), dtype=moment.dtype)
        inverses[name] = torch.linalg.inv((1 - WHITENING_SHRINKAGE) * moment + WHITENING_SHRINKAGE * isotropic).float()
    transform = editor.transform
    mend_update = transform.forward

    def whitened_update(factors: dict[str, GradientFactors]) -> dict[str, GradientFactors]:
        update = mend_update(factors)
        result = {}
        for name, step in update.items():
            keys = factors[name].inputs
            whitened = keys @ inverses[name]  # C⁻¹ is symmetric: rows are (C⁻¹h)ᵀ
            scale = (step.inputs * keys).sum(-1, keepdim=True) / (whitened * keys).sum(-1, keepdim=True)
            result[name] = GradientFactors(scale * whitened, step.output_grads, step.rows)
        return result

    transform.forward = whitened_update


def mend_rows(
    editor_path: str, records: list[EditRecord], scales: list[float], margin: float, whitening_tokens: int | None = None
) -> Iterator[str]:
    editor = MENDEditor.load(editor_path)
    label = "MEND"
    if whitening_tokens:
        whiten_update_inputs(editor, whitening_tokens)
        label = f"MEND, C⁻¹-whitened inputs ({whitening_tokens:,} tokens)"
    trained_alpha = editor.transform.edit_lrs_unscaled.detach().clone()
    edited = {name: nethook.get_module(editor.language_model.model, name).weight for name in editor.config.edit_modules}
    original = {name: weight.detach().clone() for name, weight in edited.items()}
    locality_before = unedited_locality(editor.language_model, records)

    def edit(record):
        editor.add_edit(record.prompt, record.target)
        return relative_norm(edited, original)

    for scale in scales:
        with torch.no_grad():
            editor.transform.edit_lrs_unscaled.copy_(trained_alpha * scale)
        rows = [
            measure(editor.language_model, r, before, lambda r=r: edit(r), editor.reset)
            for r, before in zip(records, locality_before)
        ]
        yield summarise(label, f"α × {scale:g}", rows, margin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--mend", default=None, help="a trained MEND editor folder: adds its rows")
    parser.add_argument("--records", type=int, default=50)
    parser.add_argument("--alpha-scales", type=float, nargs="+", default=list(MEND_ALPHA_SCALES))
    parser.add_argument("--no-gradient-steps", action="store_true", help="only the MEND rows")
    parser.add_argument("--margin", type=float, default=0.5, help="nats: the drawdown is split at this unedited margin")
    parser.add_argument("--key-whitening", type=int, default=None, metavar="TOKENS",
                        help="MEND's update inputs whitened by C over this many sample tokens (see above)")
    arguments = parser.parse_args()
    torch.manual_seed(0)
    records = load_records("zsre", "dev")[: arguments.records]
    margin = f"margin < {arguments.margin:g}"
    print(f"| update | setting | ‖ΔW‖/‖W‖ | edit success | rephrase success | drawdown | locality_token | "
          f"drawdown, {margin} | drawdown, not {margin} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for line in () if arguments.no_gradient_steps else gradient_step_rows(arguments.model, records, arguments.margin):
        print(line, flush=True)
    for line in mend_rows(arguments.mend, records, arguments.alpha_scales, arguments.margin, arguments.key_whitening) if arguments.mend else ():
        print(line, flush=True)


if __name__ == "__main__":
    main()
