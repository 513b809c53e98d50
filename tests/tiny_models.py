"""Tiny randomly initialised causal LMs and a tokenizer trained in-process: no downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    Gemma3TextConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

CORPUS = [
    "If John has a pet, then John has a dog. John does not have a dog.",
    "Question: Is the sky blue? Answer: Yes. Answer: No.",
    "The capital of France is Paris. The capital of Italy is Rome.",
    "User: please help me. Assistant: I cannot help with that request.",
    "A B C D (A) (B) true false 0 1 2 3 4 5 6 7 8 9 + - = ?",
] * 20


def tiny_tokenizer(vocab_size: int = 300) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def tiny_config(arch: str, vocab_size: int, width: int = 64):  # type: ignore[no-untyped-def]
    common: dict[str, Any] = dict(vocab_size=vocab_size, bos_token_id=2, eos_token_id=1, pad_token_id=0)
    if arch == "gemma3":
        return Gemma3TextConfig(
            hidden_size=width, intermediate_size=2 * width, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=1, head_dim=16, sliding_window=64, max_position_embeddings=512,
            layer_types=["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
            **common,
        )
    if arch == "llama":
        return LlamaConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=512, **common,
        )
    if arch == "gpt2":
        return GPT2Config(n_embd=64, n_layer=3, n_head=4, n_positions=512, **common)
    if arch == "gpt_neox":  # parallel attention + MLP, partial rotary (Pythia-style)
        return GPTNeoXConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
            max_position_embeddings=512, rope_parameters={"rope_theta": 10000.0, "partial_rotary_factor": 0.25, "rope_type": "default"},
            **common,
        )
    raise ValueError(arch)


def tiny_model(arch: str, tokenizer: PreTrainedTokenizerFast, seed: int = 0, width: int = 64) -> PreTrainedModel:
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, len(tokenizer), width))
    # Random init gives near-uniform predictions; scale up weights so loglikelihoods differ.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(8.0)
    return model.eval()


def save_tiny_model(arch: str, directory: Path, seed: int = 0, width: int = 64) -> Path:
    tokenizer = tiny_tokenizer()
    tiny_model(arch, tokenizer, seed, width).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
