"""The metrics every method is measured with.

Fact editing (zsRE, CounterFact) is scored teacher-forced: a target counts as produced when
the model's argmax equals every target token. Dialogue editing (ConvSent, PersonalityEdit)
is scored from the model's own log-likelihoods of replies.
"""

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

import torch

from serac.core.language_model import TargetScore


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def edit_success(scores: Sequence[TargetScore]) -> float:
    """Fraction of targets whose every token is the argmax (exact match); also used for rephrases."""
    return _mean([float(score.exact_match) for score in scores])


def token_accuracy(scores: Sequence[TargetScore]) -> float:
    """Mean over targets of the fraction of target tokens that are the argmax."""
    return _mean([score.token_accuracy for score in scores])


def drawdown(before: Sequence[TargetScore], after: Sequence[TargetScore]) -> float:
    """Fraction of out-of-scope inputs whose argmax output changed at any target position."""
    _check_paired(before, after)
    return _mean([float(not torch.equal(b.predicted_ids, a.predicted_ids)) for b, a in zip(before, after)])


def token_locality(before: Sequence[TargetScore], after: Sequence[TargetScore]) -> float:
    """EasyEdit's / KnowEdit's locality: per out-of-scope input, the share of target positions whose
    argmax is unchanged by the edits (teacher forced), averaged over inputs. `drawdown` is the strict
    counterpart: an input counts as changed if any position changed."""
    _check_paired(before, after)
    return _mean([(b.predicted_ids == a.predicted_ids).float().mean().item() for b, a in zip(before, after)])


def accuracy_drop(before: Sequence[TargetScore], after: Sequence[TargetScore]) -> float:
    """Exact-match accuracy on gold answers before the edit minus after it (positive = worse)."""
    _check_paired(before, after)
    return edit_success(before) - edit_success(after)


def preference_score(preferred: Sequence[TargetScore], other: Sequence[TargetScore]) -> float:
    """Fraction of pairs where `preferred` is more probable than `other` (mean token log-prob, as ROME's code).

    CounterFact's scores (Meng et al., 2022a): efficacy = new target over true object on the edit
    prompts, paraphrase = the same on rephrases, neighbourhood = true object over new target on
    neighbour prompts.
    """
    _check_paired(preferred, other)
    return _mean([float(p.mean_logprob > o.mean_logprob) for p, o in zip(preferred, other)])


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation (Rajpurkar et al., 2016), as NQ/zsRE QA scores use it: lower case,
    no punctuation, no articles, single spaces."""
    text = "".join(char for char in text.lower() if char not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def answer_exact_match(answers: Sequence[str], golds: Sequence[str]) -> float:
    """Fraction of generated answers equal to their gold answer after `normalize_answer` (SQuAD EM)."""
    _check_paired(answers, golds)
    return _mean([float(normalize_answer(a) == normalize_answer(g)) for a, g in zip(answers, golds)])


def answer_f1(answers: Sequence[str], golds: Sequence[str]) -> float:
    """Mean token-level F1 between generated and gold answers after `normalize_answer` (SQuAD F1):
    credits an answer given in a sentence ("The capital of France is Paris.") that EM would not."""
    _check_paired(answers, golds)
    return _mean([_token_f1(normalize_answer(a).split(), normalize_answer(g).split()) for a, g in zip(answers, golds)])


def _token_f1(answer: list[str], gold: list[str]) -> float:
    common = sum((Counter(answer) & Counter(gold)).values())
    if not answer or not gold or not common:
        return float(answer == gold)
    precision, recall = common / len(answer), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def perplexity(scores: Sequence[TargetScore]) -> float:
    """Token-level perplexity of the targets."""
    total = sum(score.logprobs.sum().item() for score in scores)
    count = sum(score.logprobs.numel() for score in scores)
    return math.exp(-total / count) if count else float("nan")


def perplexity_drawdown(before: Sequence[TargetScore], after: Sequence[TargetScore]) -> float:
    """Relative perplexity increase on out-of-scope text: ppl_after / ppl_before - 1."""
    _check_paired(before, after)
    return perplexity(after) / perplexity(before) - 1.0


def preference_success(target_scores: Sequence[TargetScore], contrast_scores: Sequence[TargetScore]) -> float:
    """ConvSent-style success of one edit: σ(mean log-likelihood of target replies − of contrast replies).

    Per-token mean log-likelihoods, so long replies are not penalised; 0.5 means no preference.
    """
    difference = _mean([s.mean_logprob for s in target_scores]) - _mean([s.mean_logprob for s in contrast_scores])
    return 1.0 / (1.0 + math.exp(-difference))


def on_topic(before: Sequence[TargetScore], after: Sequence[TargetScore]) -> float:
    """min(1, exp(post − pre mean log-likelihood)) of on-topic replies: 1 unless the edit made them less likely.

    SERAC's topic term: an edit must change the stance, not push the model off the topic.
    """
    _check_paired(before, after)
    gain = _mean([s.mean_logprob for s in after]) - _mean([s.mean_logprob for s in before])
    return min(1.0, math.exp(gain))


def kl_divergence(logprobs_before: torch.Tensor, logprobs_after: torch.Tensor) -> float:
    """Mean over positions of KL(before ‖ after) between next-token distributions ([positions, vocab] log-probs)."""
    if logprobs_before.shape != logprobs_after.shape:
        raise ValueError(f"shapes differ: {tuple(logprobs_before.shape)} vs {tuple(logprobs_after.shape)}")
    per_position = (logprobs_before.exp() * (logprobs_before - logprobs_after)).sum(dim=-1)
    # KL is never negative; rounding makes it so by ~1e-10 when the two hardly differ.
    return per_position.clamp(min=0.0).mean().item()


# ROME's n-gram orders and weights: trigrams count twice as much as bigrams.
FLUENCY_NGRAMS = ((2, 2 / 3), (3, 4 / 3))
_WORD = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def words(text: str) -> list[str]:
    """The word tokens the n-gram measures count: runs of letters and digits (inner apostrophes
    kept, so "isn't" is one word) and each punctuation mark on its own.

    ROME tokenises with nltk's `word_tokenize`; on ordinary prose this splits the same way except
    for contractions (nltk: "is", "n't"), and needs no extra dependency or tokenizer data.
    """
    return _WORD.findall(text)


def ngram_entropy(text: str) -> float:
    """ROME's fluency of one text (Meng et al., 2022a, `compute_n_gram_entropy`): the mean over
    n = 2, 3 of weight_n × the entropy (bits) of the text's n-gram frequency distribution, with
    weights 2/3 and 4/3. Repetitive text has few distinct n-grams, hence low entropy; a text with
    fewer than n words contributes 0 for that n, as in ROME."""
    tokens = words(text)
    weighted = []
    for n, weight in FLUENCY_NGRAMS:
        counts = Counter(zip(*(tokens[start:] for start in range(n)))).values()
        total = sum(counts)
        weighted.append(weight * -sum(count / total * math.log2(count / total) for count in counts))
    return _mean(weighted)


def generation_fluency(texts: Sequence[str]) -> float:
    """Generation fluency as in ROME and MEMIT (Meng et al., 2022a, b): the arithmetic mean of
    `ngram_entropy` over the generated texts."""
    return _mean([ngram_entropy(text) for text in texts])


def most_repeated_trigram_count(text: str) -> int:
    """How often the text's most frequent word trigram occurs (0 for fewer than three words)."""
    tokens = words(text)
    return max(Counter(zip(tokens, tokens[1:], tokens[2:])).values(), default=0)


def repetitive_share(texts: Sequence[str], min_repeats: int) -> float:
    """Fraction of texts whose most frequent word trigram occurs at least `min_repeats` times:
    generations that loop over the same phrase."""
    return _mean([float(most_repeated_trigram_count(text) >= min_repeats) for text in texts])


def _check_paired(before: Sequence, after: Sequence) -> None:
    if len(before) != len(after):
        raise ValueError(f"before/after lists differ in length: {len(before)} vs {len(after)}")
