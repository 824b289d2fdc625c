"""Model-based augmentation: embedding-neighbour synonyms, masked-LM refills, paraphrase and
back-translation through a pluggable generator, and the label-keeping filter."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

from lmforge.config import AugmentConfig
from lmforge.data.augment_ops import (
    OPS,
    STOPWORDS,
    AugmentContext,
    Operation,
    match_case,
    random_insert,
    read_word_list,
    synonym_replace,
    unit_op,
)
from lmforge.data.segment import is_chinese, segment
from lmforge.errors import ConfigError
from lmforge.generation import Generator
from lmforge.models.build import from_pretrained, load_tokenizer, resolve
from lmforge.registry import Registry
from lmforge.zoo import home

log = logging.getLogger("lmforge.data")
BATCH = 32

# name -> factory(augment config) -> generate(instructions) -> replies; any other name is loaded as a causal LM.
TextGenerator = Callable[[list[str]], list[str]]
GENERATORS: Registry[Callable[[AugmentConfig], TextGenerator]] = Registry("text generator")

PARAPHRASE = ("Rewrite this sentence in other words, keeping its meaning and tone. "
              "Reply with the rewritten sentence only.\n\n{text}")
_LEADING_LABEL = re.compile(r"^(?:\w+\s?){1,3}:\s*(\S.*)$")
TRANSLATE = "Translate this text into {language}. Reply with the translation only.\n\n{text}"


def _surface(token: str, bpe: bool) -> str | None:
    """The word a vocabulary entry stands for when it starts a word, else None."""
    if bpe:
        return token[1:] if token[:1] in ("Ġ", "▁") and len(token) > 1 else None
    return None if token.startswith("##") else token


class EmbeddingNeighbours:
    """Synonyms as the nearest whole-word entries of a model's input embeddings (cosine similarity).

    Inflections of the word itself (``movie``/``movies``) are skipped, so the neighbours add variety.

    Args:
        source: Model folder whose tokenizer and input embeddings are used.
        k: Neighbours returned per word.
    """

    def __init__(self, source: str, k: int) -> None:
        self.k = k
        tokenizer = load_tokenizer(source)
        weights = from_pretrained(AutoModel, source).get_input_embeddings().weight.detach().float()
        vocab = tokenizer.get_vocab()
        bpe = sum(t.startswith(("Ġ", "▁")) for t in vocab) > len(vocab) // 4
        special = set(tokenizer.all_special_tokens)
        words = {}
        for token, index in vocab.items():
            word = _surface(token, bpe)
            if word and token not in special and word.isalpha() and index < len(weights):
                words.setdefault(word, index)
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.matrix = torch.nn.functional.normalize(weights[list(words.values())], dim=-1)  # (V, H)
        self.lowercase = tokenizer.tokenize("Hello") == tokenizer.tokenize("hello")
        self._cache: dict[str, list[str]] = {}

    def __call__(self, word: str) -> list[str]:
        """Up to ``k`` neighbours of ``word`` (empty when it is not one vocabulary entry)."""
        key = word.lower() if self.lowercase else word
        if key not in self._cache:
            self._cache[key] = self._neighbours(key)
        return self._cache[key]

    def _neighbours(self, word: str) -> list[str]:
        row = self.index.get(word)
        if row is None or len(word) < 2:
            return []
        scores = self.matrix @ self.matrix[row]
        found = []
        for j in scores.topk(min(len(self.words), 4 * self.k + 1)).indices.tolist():
            other = self.words[j]
            stem = min(4, len(word), len(other))
            if other != word and other[:stem] != word[:stem] and other.lower() not in STOPWORDS:
                found.append(other)
            if len(found) == self.k:
                break
        return found


def synonym_source(ctx: AugmentContext) -> Callable[[str], list[str]]:
    """``word -> synonyms`` from the user's word list, else from the model's embedding neighbours."""
    if ctx.cfg.synonyms:
        table = read_word_list(ctx.cfg.synonyms)
        return lambda word: [match_case(word, s) for s in table.get(word.lower(), [])]
    if not ctx.model_source:
        raise ConfigError("data.augment.synonyms is not set and there is no model to take embedding neighbours from; "
                          "give a word list file")
    neighbours = EmbeddingNeighbours(ctx.model_source, ctx.cfg.neighbours)
    return lambda word: [match_case(word, s) for s in neighbours(word)]



OPS.add("insert", unit_op(random_insert, synonym_source))
OPS.add("synonym", unit_op(synonym_replace, synonym_source))


class MaskFiller:
    """Masks ``rate`` of the words of each text and refills them with a masked LM's likely words."""

    def __init__(self, source: str, top_k: int = 8) -> None:
        model, info = from_pretrained(AutoModelForMaskedLM, source, output_loading_info=True)
        if info.get("missing_keys"):
            raise ConfigError(f"data.augment.mlm_model: {source} has no masked-LM head (its weights lack "
                              f"{sorted(info['missing_keys'])[0]}); set data.augment.mlm_model to a masked language model")
        self.tokenizer = load_tokenizer(source)
        if self.tokenizer.mask_token is None:
            raise ConfigError(f"data.augment.mlm_model: the tokenizer of {source} has no mask token")
        self.model, self.top_k = model.eval(), top_k
        self.special = set(self.tokenizer.all_special_ids)

    def __call__(self, texts: list[str], rng: random.Random, rate: float, units: str) -> list[str | None]:
        """Refilled copies of ``texts`` (None where no word could be masked)."""
        out: list[str | None] = []
        for start in tqdm(range(0, len(texts), BATCH), desc="augment: contextual", disable=len(texts) <= 4 * BATCH, leave=False):
            out += self._batch(texts[start:start + BATCH], rng, rate, units)
        return out

    def _batch(self, texts: list[str], rng: random.Random, rate: float, units: str) -> list[str | None]:
        plans = []
        for text in texts:
            words, joiner = segment(text, units)
            slots = [i for i, w in enumerate(words) if w.lower() not in STOPWORDS and any(c.isalnum() for c in w)]
            picks = sorted(rng.sample(slots, min(len(slots), max(1, round(rate * len(words)))))) if slots else []
            masked = [self.tokenizer.mask_token if i in picks else w for i, w in enumerate(words)]
            plans.append((words, joiner, picks, joiner.join(masked)))
        enc = self.tokenizer([p[3] for p in plans], padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.inference_mode():
            logits = self.model(**enc).logits  # (B, T, V)
        results: list[str | None] = []
        for row, (words, joiner, picks, _) in enumerate(plans):
            positions = (enc["input_ids"][row] == self.tokenizer.mask_token_id).nonzero().flatten().tolist()
            for slot, pos in zip(picks, positions, strict=False):
                words[slot] = self._choose(logits[row, pos], words[slot], rng) or words[slot]
            results.append(joiner.join(words) if picks else None)
        return results

    def _choose(self, scores: torch.Tensor, original: str, rng: random.Random) -> str | None:
        probs = scores.float().softmax(-1)
        top = probs.topk(self.top_k * 3)
        options, weights = [], []
        for p, index in zip(top.values.tolist(), top.indices.tolist(), strict=False):
            word = self.tokenizer.decode([index]).strip()
            if index in self.special or not word or word.startswith("##") or word.lower() == original.lower():
                continue
            options.append(word)
            weights.append(p)
            if len(options) == self.top_k:
                break
        return rng.choices(options, weights)[0] if options else None


@OPS.register("contextual")
def _contextual(ctx: AugmentContext) -> Operation:
    source = ctx.cfg.mlm_model or ctx.model_source
    if not source:
        raise ConfigError("data.augment.ops has 'contextual' but no masked LM: set data.augment.mlm_model")

    filler = ctx.shared("mlm", lambda: MaskFiller(resolve(source)))
    return lambda texts, targets, rng: filler(texts, rng, ctx.cfg.rate, ctx.cfg.units)


class CausalLMGenerator:
    """Replies of a causal LM (chat template when it has one) to instructions, sampled with a seed."""

    def __init__(self, source: str, seed: int, max_new_tokens: int = 96) -> None:
        model = from_pretrained(AutoModelForCausalLM, source)
        self.generator = Generator(model, load_tokenizer(source))
        self.options = self.generator.options(temperature=0.7, top_p=0.9, max_new_tokens=max_new_tokens, seed=seed,
                                              batch_size=BATCH)

    def __call__(self, instructions: list[str]) -> list[str]:
        """One reply per instruction."""
        return list(self.generator.generate(list(instructions), self.options, progress="augment: generating"))


def generator_for(cfg: AugmentConfig) -> TextGenerator:
    """A registered generator by name, or the named causal LM."""
    if cfg.generator in GENERATORS:
        return GENERATORS.get(cfg.generator)(cfg)

    return CausalLMGenerator(resolve(cfg.generator), cfg.seed)


def clean_reply(reply: str, source: str) -> str | None:
    """The first line of a reply without quotes or a leading label; None when empty, unchanged or runaway."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if not lines:
        return None
    labelled = _LEADING_LABEL.match(lines[0])
    text = (labelled.group(1) if labelled else lines[0]).strip().strip("\"'“”「」").strip()
    if not text or text.lower() == source.lower() or len(text) > 3 * len(source) + 20:
        return None
    return text


class CachedGeneration:
    """Generator replies cached on disk per (generator, seed, instruction), so reruns cost nothing."""

    def __init__(self, cfg: AugmentConfig, generate: Callable[[], TextGenerator]) -> None:
        key = hashlib.sha256(f"{cfg.generator}|{cfg.seed}|{PARAPHRASE}|{TRANSLATE}".encode()).hexdigest()[:20]
        self.path = home() / "cache" / "augment" / f"{key}.json"
        self.table: dict[str, str] = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}
        self._make, self._generate = generate, None

    def __call__(self, instructions: list[str]) -> list[str]:
        """Replies in order; only uncached instructions reach the model."""
        todo = list(dict.fromkeys(i for i in instructions if i not in self.table))
        if todo:
            self._generate = self._generate or self._make()
            self.table.update(zip(todo, self._generate(todo), strict=False))
            self._save()
        return [self.table[i] for i in instructions]

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.table, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.path)


def _language(text: str) -> str:
    return "Chinese" if is_chinese(text) else "English"


def _generative(ctx: AugmentContext, back_translate: bool) -> Operation:
    generate = ctx.shared("generator", lambda: CachedGeneration(ctx.cfg, lambda: generator_for(ctx.cfg)))
    label_filter(ctx, required=True)  # fail before generating when nothing can check the outputs

    def apply(texts: list[str], targets: np.ndarray, rng: random.Random) -> list[str | None]:
        if back_translate:
            pivots = generate([TRANSLATE.format(language=ctx.cfg.pivot_language, text=t) for t in texts])
            back = zip(texts, pivots, strict=True)
            replies = generate([TRANSLATE.format(language=_language(t), text=p.strip()) for t, p in back])
        else:
            replies = generate([PARAPHRASE.format(text=t) for t in texts])
        return [clean_reply(r, t) for r, t in zip(replies, texts, strict=False)]

    return apply


OPS.add("paraphrase", lambda ctx: _generative(ctx, back_translate=False))
OPS.add("back_translation", lambda ctx: _generative(ctx, back_translate=True))


def labeler_source(ctx: AugmentContext) -> str | None:
    """The filter's model: ``filter_model``, else the fine-tuned model when it is a trained lmforge run."""
    if ctx.cfg.filter_model:
        return ctx.cfg.filter_model
    if ctx.model_source and (Path(ctx.model_source) / "lmforge.json").is_file():
        return ctx.model_source
    return None


def label_filter(ctx: AugmentContext, required: bool = False) -> Callable[[list[str | None], np.ndarray], list[str | None]]:
    """``(texts, targets) -> texts`` with None where the labeler disagrees with the target; a no-op without a labeler.

    Args:
        ctx: Augmentation context.
        required: Raise when ``data.augment.filter`` is on but there is no labeler.
    """
    source = labeler_source(ctx) if ctx.cfg.filter else None
    if source is None or ctx.labels.kind == "regression":
        if required and ctx.cfg.filter and ctx.labels.kind != "regression":
            raise ConfigError("data.augment.filter needs a trained classifier to check generated texts: set "
                              "data.augment.filter_model to a run directory, or data.augment.filter=false")
        return lambda texts, targets: texts
    labeler = ctx.shared("labeler", lambda: _load_labeler(ctx, source))
    names = ctx.labels.names

    def keep(texts: list[str | None], targets: np.ndarray) -> list[str | None]:
        index = [i for i, t in enumerate(texts) if t]
        preds = labeler.predict([texts[i] for i in index]) if index else []
        out: list[str | None] = [None] * len(texts)
        for i, pred in zip(index, preds, strict=False):
            if ctx.labels.kind == "multi":
                same = set(pred["labels"]) == {names[j] for j in np.flatnonzero(targets[i])}
            else:
                same = pred["label"] == names[int(targets[i])]
            out[i] = texts[i] if same else None
        return out

    return keep


def _load_labeler(ctx: AugmentContext, source: str) -> Any:
    if ctx.load_labeler is None:
        raise ConfigError(f"data.augment.filter_model={source} cannot be loaded here: no run loader was given to the "
                          "augmentation (run it through lmforge finetune)")
    return ctx.load_labeler(source)
