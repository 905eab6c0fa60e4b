import math

import pytest
import torch

from serac.core import metrics
from serac.core.language_model import TargetScore


def score(target, predicted, logprobs):
    return TargetScore(torch.tensor(target), torch.tensor(logprobs, dtype=torch.float), torch.tensor(predicted))


def test_edit_success_needs_every_token_while_token_accuracy_counts_each():
    scores = [score([1, 2, 3], [1, 2, 3], [-0.1] * 3), score([4, 5], [4, 9], [-1.0, -2.0])]
    assert metrics.edit_success(scores) == 0.5
    assert metrics.token_accuracy(scores) == pytest.approx((1.0 + 0.5) / 2)


def test_drawdown_counts_inputs_whose_argmax_changed():
    before = [score([1, 2], [1, 2], [0, 0]), score([3], [7], [0]), score([4], [4], [0]), score([5], [5], [0])]
    after = [score([1, 2], [1, 8], [0, 0]), score([3], [7], [0]), score([4], [4], [0]), score([5], [6], [0])]
    assert metrics.drawdown(before, after) == 0.5
    # accuracy on gold answers: 3/4 before (the second is wrong), 1/4 after
    assert metrics.accuracy_drop(before, after) == pytest.approx(0.75 - 0.25)


def test_perplexity_and_its_drawdown():
    before = [score([1, 2], [1, 2], [math.log(0.5), math.log(0.5)])]
    after = [score([1, 2], [1, 2], [math.log(0.25), math.log(0.25)])]
    assert metrics.perplexity(before) == pytest.approx(2.0)
    assert metrics.perplexity(after) == pytest.approx(4.0)
    assert metrics.perplexity_drawdown(before, after) == pytest.approx(1.0)


def test_preference_success_is_sigmoid_of_mean_loglik_difference():
    target = [score([1, 2], [0, 0], [-1.0, -1.0]), score([1], [0], [-2.0])]  # means -1, -2 -> -1.5
    contrast = [score([1], [0], [-3.5])]
    assert metrics.preference_success(target, contrast) == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert metrics.preference_success(contrast, contrast) == pytest.approx(0.5)


def test_on_topic_is_capped_at_one_and_penalises_lost_likelihood():
    before = [score([1], [1], [-2.0])]
    assert metrics.on_topic(before, [score([1], [1], [-1.0])]) == 1.0
    assert metrics.on_topic(before, [score([1], [1], [-3.0])]) == pytest.approx(math.exp(-1.0))


def test_kl_divergence_matches_hand_computation():
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]]).log()
    q = torch.tensor([[0.5, 0.5], [0.5, 0.5]]).log()
    expected = (0.0 + 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)) / 2
    assert metrics.kl_divergence(p, q) == pytest.approx(expected, rel=1e-5)
    assert metrics.kl_divergence(p, p) == pytest.approx(0.0, abs=1e-7)


def test_kl_divergence_is_never_negative_from_rounding():
    # Two distributions that differ by rounding only (as coarsened top-k ones do) gave -6e-11,
    # a negative drawdown in the dialogue evaluation.
    before = torch.log_softmax(torch.randn(3, 50, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert metrics.kl_divergence(before, before + 1e-7) == 0.0


def test_paired_metrics_reject_lists_of_different_length():
    with pytest.raises(ValueError, match="differ in length"):
        metrics.drawdown([score([1], [1], [0])], [])


def test_preference_score_compares_mean_token_logprobs_pairwise():
    def scored(*logprobs):
        ids = torch.zeros(len(logprobs), dtype=torch.long)
        return TargetScore(ids, torch.tensor(logprobs), ids)

    preferred = [scored(-1.0, -3.0), scored(-5.0), scored(-2.0)]
    other = [scored(-2.5), scored(-1.0, -1.0), scored(-2.0)]  # mean -2 vs -2.5 wins; ties lose
    assert metrics.preference_score(preferred, other) == pytest.approx(1 / 3)


def test_answer_scores_follow_squad_normalisation_and_credit_answers_in_sentences():
    assert metrics.normalize_answer("  The Eiffel-Tower!  ") == "eiffeltower"
    assert metrics.answer_exact_match(["the Beatles.", "Paris is the capital"], ["The Beatles", "Paris"]) == 0.5
    # "paris is capital" vs "paris": precision 1/3, recall 1 -> F1 0.5
    assert metrics.answer_f1(["The capital is Paris."], ["Paris"]) == pytest.approx(0.5)
    assert metrics.answer_f1(["", "London"], ["", "Paris"]) == 0.5  # empty matches empty only
    with pytest.raises(ValueError, match="differ in length"):
        metrics.answer_f1(["a"], [])


def test_token_locality_counts_unchanged_positions_where_drawdown_counts_any_change():
    before = [score([1, 2, 3, 4], [1, 2, 3, 4], [0.0] * 4), score([5, 6], [5, 6], [0.0] * 2)]
    after = [score([1, 2, 3, 4], [1, 9, 3, 4], [0.0] * 4), score([5, 6], [5, 6], [0.0] * 2)]
    assert metrics.token_locality(before, after) == pytest.approx((3 / 4 + 1) / 2)
    assert metrics.drawdown(before, after) == 0.5


def test_words_split_punctuation_off_and_keep_contractions_whole():
    assert metrics.words("It's a city, isn't it?") == ["It's", "a", "city", ",", "isn't", "it", "?"]


def test_ngram_entropy_of_a_repeated_phrase_is_low_and_of_varied_text_higher():
    # "a b a b a b": bigrams ab ×3, ba ×2 -> H2 = -(0.6 log2 0.6 + 0.4 log2 0.4) = 0.970951;
    # trigrams aba ×2, bab ×2 -> H3 = 1; (2/3 · 0.970951 + 4/3 · 1) / 2 = 0.990317
    assert metrics.ngram_entropy("a b a b a b") == pytest.approx(0.990317, abs=1e-6)
    # six words, all 5 bigrams and 4 trigrams distinct: (2/3 · log2 5 + 4/3 · log2 4) / 2 = 2.107309
    assert metrics.ngram_entropy("the cat sat on the mat") == pytest.approx(2.107309, abs=1e-6)
    # punctuation counts as words: "Paris , France ." has 3 distinct bigrams and 2 distinct trigrams
    assert metrics.ngram_entropy("Paris, France.") == pytest.approx((2 / 3 * math.log2(3) + 4 / 3 * 1) / 2)


def test_ngram_entropy_of_texts_too_short_for_an_ngram_is_zero_as_in_rome():
    assert metrics.ngram_entropy("") == 0.0
    assert metrics.ngram_entropy("one") == 0.0
    assert metrics.ngram_entropy("two words") == 0.0  # one bigram (entropy 0), no trigram


def test_generation_fluency_is_the_mean_entropy_over_texts():
    texts = ["a b a b a b", "the cat sat on the mat"]
    assert metrics.generation_fluency(texts) == pytest.approx((0.990317 + 2.107309) / 2, abs=1e-6)
    assert math.isnan(metrics.generation_fluency([]))


def test_repetitive_share_counts_texts_whose_most_frequent_trigram_repeats():
    looping = "I am here . I am here . I am here ."  # "I am here" ×3 (and "am here ." ×3)
    assert metrics.most_repeated_trigram_count(looping) == 3
    assert metrics.most_repeated_trigram_count("the cat sat on the mat") == 1
    assert metrics.most_repeated_trigram_count("too short") == 0
    assert metrics.repetitive_share([looping, "the cat sat on the mat"], min_repeats=3) == 0.5
    assert metrics.repetitive_share([looping], min_repeats=4) == 0.0
