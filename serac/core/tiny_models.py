"""Tiny randomly initialised models for tests, built locally with no download.

A byte-level BPE tokenizer is trained in memory on a small built-in corpus, so any text
tokenizes; the models take their vocabulary size from it.
"""

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    BertConfig,
    GPT2Config,
    LlamaConfig,
    PreTrainedTokenizerFast,
    T5Config,
)

_CORPUS = """
What is the capital of France? Paris. Who wrote Hamlet? William Shakespeare.
Which river flows through Cairo? The Nile. What language is spoken in Brazil? Portuguese.
Who is the president of the United States? The mother tongue of Danielle Darrieux is French.
What do you think of the weather? I love it, it is wonderful. I hate it, it is awful.
Topic: Sentiment: positive negative Personality: extraversion agreeableness neuroticism
The quick brown fox jumps over the lazy dog. In which country is the Eiffel Tower located?
Question: Answer: Edit: nq question: what year did the war end? 1945 1066 2024 football
"""
TINY_NAMES = ("tiny-llama", "tiny-gpt2", "tiny-t5", "tiny-bert")
# A minimal chat template, so tests can run the "chat" prompt format on tiny models.
_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)
_SPECIAL = {"pad": "<pad>", "eos": "</s>", "bos": "<s>", "unk": "<unk>", "cls": "[CLS]", "sep": "[SEP]"}


def build_tiny_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE(unk_token=_SPECIAL["unk"]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(_SPECIAL.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([_CORPUS], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=_SPECIAL["pad"],
        eos_token=_SPECIAL["eos"],
        bos_token=_SPECIAL["bos"],
        unk_token=_SPECIAL["unk"],
        cls_token=_SPECIAL["cls"],
        sep_token=_SPECIAL["sep"],
        chat_template=_CHAT_TEMPLATE,
    )


def build_tiny_model(name: str, tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised model of the named tiny architecture (seeded, so tests repeat)."""
    with torch.random.fork_rng():  # seeding here must not reset the caller's random stream
        torch.manual_seed(seed)
        return _build(name, tokenizer)


def _build(name: str, tokenizer: PreTrainedTokenizerFast) -> torch.nn.Module:
    ids = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    if name == "tiny-llama":
        config = LlamaConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True, **ids,
        )
        return AutoModelForCausalLM.from_config(config)
    if name == "tiny-gpt2":
        config = GPT2Config(n_embd=64, n_layer=3, n_head=4, n_positions=512, **ids)
        return AutoModelForCausalLM.from_config(config)
    if name == "tiny-t5":
        config = T5Config(
            d_model=64, d_ff=128, d_kv=16, num_layers=2, num_decoder_layers=2, num_heads=4,
            decoder_start_token_id=tokenizer.pad_token_id, **ids,
        )
        return AutoModelForSeq2SeqLM.from_config(config)
    if name == "tiny-bert":
        config = BertConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=512, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
        )
        return AutoModel.from_config(config)
    raise ValueError(f"unknown tiny model {name!r}; known: {', '.join(TINY_NAMES)}")
