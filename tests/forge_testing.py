"""Helpers of the tests in this folder: tiny random models built in-process and small synthetic datasets."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests compare numbers with plain transformers and with earlier runs: fp32 on every machine. test_devices.py
# covers the bf16 path on AMX CPUs.
os.environ.setdefault("LMFORGE_CPU_BF16", "0")

# LMFORGE_SHARED_DATA points elsewhere when the checkout is not a sibling of shared/ (e.g. a git worktree).
SHARED_DATA = Path(os.environ.get("LMFORGE_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
POSITIVE = ["good", "great", "fine", "nice", "happy"]
NEGATIVE = ["bad", "awful", "poor", "sad", "boring"]
FILLER = ["the", "a", "movie", "film", "was", "is", "very", "plot", "actor", "story", "it", "this"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_vocab() -> dict[str, int]:
    """Specials, words of the toy data, letters and word pieces, a few CJK characters."""
    words = SPECIALS + POSITIVE + NEGATIVE + FILLER + list("abcdefghijklmnopqrstuvwxyz.,!?")
    words += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"] + list("中文好坏电影很")
    return {w: i for i, w in enumerate(dict.fromkeys(words))}


def build_tiny_bert(path: Path, seed: int = 0) -> Path:
    """A 2-layer, hidden-32 BERT with an MLM head and its WordPiece tokenizer, saved to ``path``."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    vocab = tiny_vocab()
    tokenizer = BertTokenizer(vocab=vocab)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=0)
    torch.manual_seed(seed)
    BertForMaskedLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random BERT (built once per test session)."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def toy_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Sentences whose label is given by one sentiment word among filler words."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(["positive", "negative"])
        words = rng.sample(FILLER, rng.randint(2, 8)) + [rng.choice(POSITIVE if label == "positive" else NEGATIVE)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]], delimiter: str = ",") -> Path:
    """Write dict rows with a header line."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def toy_csv(tmp_path: Path) -> Path:
    """A 240-row labeled CSV (text,label)."""
    return write_csv(tmp_path / "toy.csv", toy_rows(240))


def tiny_config(model_path: Path, data_file: Path, run_dir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A fast finetune config for the tiny model; ``sections`` update its sections."""
    cfg: dict[str, Any] = {
        "data": {"train": str(data_file), "split": {"validation": 0.2}, "max_length": 32, "cache": False},
        "model": {"name": str(model_path)},
        "task": {"name": "classification"},
        "train": {"epochs": 2, "batch_size": 16, "lr": 1e-3, "warmup_ratio": 0.0, "log_every": 1, "seed": 0},
        "output": {"dir": str(run_dir), "tensorboard": False, "report": False, "baseline": False},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


def shared_data(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test where that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (the shared data folder is only on development machines)")
    return path


CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tiny_llama(path: Path, seed: int = 0, chat_template: bool = True) -> Path:
    """A 2-layer, hidden-32 Llama causal LM with a byte-level BPE tokenizer (and a ChatML template), saved to ``path``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [" ".join(POSITIVE + NEGATIVE + FILLER), "system user assistant answer question reply classify text label",
              "0 1 2 3 4 5 6 7 8 9 + - = ?", "中文好坏电影很",
              "Review: Sentiment: positive negative great terrible good bad It was 评论 情感 正面 负面"] * 20
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        bos_token="<|endoftext|>", unk_token="<|endoftext|>")
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, initializer_range=0.2)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random Llama decoder with a chat template (built once per test session)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def instruct_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Instruction/response pairs with a learnable rule: the response names the sentiment word's class."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        word = rng.choice(POSITIVE + NEGATIVE)
        filler = " ".join(rng.sample(FILLER, 3))
        rows.append({"instruction": f"classify {filler} {word}", "response": "good" if word in POSITIVE else "bad"})
    return rows
