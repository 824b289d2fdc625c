"""Token classification (named-entity recognition): a tag per word, entities as character spans of the text.

Files are CoNLL, token JSONL or character-span JSONL (see :mod:`lmforge.data.tagging`), read into IOB2.
Words are split into sub-tokens by the model's tokenizer; the first sub-token of a word carries its label
and the others are left out of the loss, and predictions come back per word, then as character spans of
the original text. Chinese text is tagged per character.

The model is the checkpoint's ``AutoModelForTokenClassification``. Two options add to it:
``task.crf`` puts a CRF layer (``model.crf``) over the word scores, and ``task.casing`` feeds each
word's casing through the token-type embeddings, which an uncased tokenizer would otherwise lose.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn
from transformers import AutoModelForTokenClassification

from lmforge.config import DataConfig, ModelConfig, TaskConfig
from lmforge.data.batching import eval_batches, pad
from lmforge.data.dataset import Split
from lmforge.data.labels import LabelSpace
from lmforge.data.normalize import make_normalizer
from lmforge.data.pipeline import read_examples
from lmforge.data.tagging import (
    IGNORE_INDEX,
    TaggedExamples,
    align_labels,
    bio_to_spans,
    label_names,
    read_tagged,
    split_by_document,
    split_words,
    word_to_char_spans,
)
from lmforge.data.tokenize import Encoded, Ragged
from lmforge.errors import ConfigError, DataError
from lmforge.evaluation.span_baselines import fit_crf, predict_crf
from lmforge.evaluation.spans import ner_metrics
from lmforge.models.build import from_pretrained, load_tokenizer, model_kwargs
from lmforge.models.crf import CRF
from lmforge.models.heads import core_model
from lmforge.tasks.base import TASKS

log = logging.getLogger("lmforge.data")
# Casing ids carried in the token-type ids: no letters, lower, Title, UPPER, mixed (iPhone, McDonald).
NUM_CASES = 5


def case_id(word: str) -> int:
    """The casing class of ``word``: 0 no letters, 1 lower, 2 Title (or one capital), 3 UPPER, 4 mixed."""
    letters = [c for c in word if c.isalpha() and c.lower() != c.upper()]
    if not letters:
        return 0
    if all(c.islower() for c in letters):
        return 1
    if letters[0].isupper() and all(c.islower() for c in letters[1:]):
        return 2
    return 3 if all(c.isupper() for c in letters) else 4


def subsample(examples: Any, limit: int | None, seed: int, what: str) -> Any:
    """A seeded random subset of ``limit`` examples (in file order), or all of them."""
    if limit is None or limit >= len(examples):
        return examples
    log.info("using a subset: %d of %d %s examples", limit, len(examples), what)
    return examples.subset(np.sort(np.random.default_rng(seed).permutation(len(examples))[:limit]))


def grouped_splits(data: DataConfig, read: Callable[[str], Any], hold_out: Callable[[Any, float, int], tuple[Any, Any]]) -> dict[str, Any]:
    """Train, validation and test examples: given files, or shares of train held out whole by group (document, article)."""
    splits = {"train": read(data.train)}
    for name, share in (("test", data.split.test), ("validation", data.split.validation)):
        source = getattr(data, name)
        if source:
            splits[name] = read(source)
        elif share > 0:
            if data.split.folds:
                raise ConfigError("data.split.folds is not supported for ner and qa; give a validation file or a share")
            splits["train"], splits[name] = hold_out(splits["train"], share, data.split.seed)
            if not len(splits[name]) or not len(splits["train"]):
                raise DataError(f"{data.train}: holding out {share:.0%} by document leaves an empty split; "
                                f"give more data or set data.split.{name}")
    limits = {"train": data.max_train_samples}
    return {name: subsample(ex, limits.get(name, data.max_eval_samples), data.split.seed, name) for name, ex in splits.items()}


@dataclass
class TokenSplit(Split):
    """Sentences tokenized as words; ``word_ids`` gives each token's word (-1 for special tokens).

    Attributes:
        word_ids: Word index of every token, per sentence.
        token_labels: Label id of each word's first token, -100 elsewhere (None when unlabeled).
    """

    word_ids: Ragged | None = None
    token_labels: Ragged | None = None


def own_positions(scores: torch.Tensor, length: int) -> torch.Tensor:
    """The scores of the input's own ``length`` positions: prompt and P-tuning put virtual tokens before them."""
    return scores[:, scores.shape[1] - length:]


def gather_words(logits: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Word scores from token scores: the rows of ``starts`` packed to the left.

    Args:
        logits: (B, T, L) token scores.
        starts: (B, T) true at the first token of every word.

    Returns:
        (B, W, L) word scores, (B, W) word mask, (B, W) token position of each word.
    """
    counts = starts.sum(1)
    width = max(1, int(counts.max()))
    positions = torch.argsort((~starts).to(torch.int8), dim=1, stable=True)[:, :width]  # (B, W)
    mask = torch.arange(width, device=logits.device)[None, :] < counts[:, None]
    mask[:, 0] = True  # a sentence with no word keeps one position so the CRF has a start; its output is unused
    words = logits.gather(1, positions.unsqueeze(2).expand(-1, -1, logits.shape[2]))
    return words, mask, positions


def crf_layer(model: nn.Module) -> nn.Module:
    """The CRF on top of ``model`` (a peft wrapper's trained copy where there is one)."""
    crf = getattr(core_model(model), "crf", None)
    if crf is None:
        raise ConfigError("the model has no CRF layer (model.crf); it was built without task.crf")
    return crf


def load_crf_weights(crf: CRF, source: str) -> None:
    """Copy ``crf.*`` tensors from the safetensors files of ``source`` (a saved run) when it holds them."""
    state = {}
    for file in sorted(Path(source).glob("*.safetensors")) if Path(source).is_dir() else []:
        with safe_open(str(file), "pt") as handle:
            state |= {k.removeprefix("crf."): handle.get_tensor(k) for k in handle.keys() if k.startswith("crf.")}
    if state:
        crf.load_state_dict(state)


@TASKS.register("ner")
class TokenTask:
    """Named-entity recognition: IOB2 tags per word, entity-level metrics, entities with character offsets."""

    name: ClassVar[str] = "ner"
    default_metric: ClassVar[str] = "f1"
    auto_model: ClassVar[str] = "AutoModelForTokenClassification"

    def __init__(self, cfg: TaskConfig) -> None:
        self.cfg = cfg
        self._casing: dict[str, bool] = {}

    def uses_casing(self, tokenizer: Any) -> bool:
        """Whether casing ids go in the token types: ``task.casing``, or auto for lowercasing tokenizers with token types."""
        if self.cfg.casing is not None:
            return self.cfg.casing
        key = getattr(tokenizer, "name_or_path", "")
        if key not in self._casing:
            lowers = tokenizer("Ab", add_special_tokens=False)["input_ids"] == tokenizer("ab", add_special_tokens=False)["input_ids"]
            self._casing[key] = bool(lowers and "token_type_ids" in tokenizer.model_input_names)
        return self._casing[key]

    def read(self, source: str, data: DataConfig, types: Sequence[str] | None) -> TaggedExamples:
        """A tagged file read with the data settings (format, scheme, tag column, bad-row policy)."""
        fmt = {"auto": "auto", "conll": "conll", "jsonl": "auto", "txt": "conll"}.get(data.format)
        if fmt is None:
            raise ConfigError(f"data.format={data.format} is not a tagging format; use auto, conll or jsonl for ner")
        return read_tagged(source, fmt, data.tag_scheme, data.tag_column, types, data.encoding, data.on_bad_rows)

    def label_space(self, train: TaggedExamples, data: DataConfig) -> LabelSpace:
        """IOB2 labels of the declared entity types (``data.labels``) or of those in the training file."""
        return LabelSpace("tags", label_names(data.labels or train.types()))

    def labeled_splits(self, data: DataConfig) -> tuple[dict[str, tuple[TaggedExamples, np.ndarray]], LabelSpace]:
        """Train/validation(/test) sentences, validation held out by document when no file is given."""
        if data.augment.ops:
            raise ConfigError("data.augment is not supported for ner (it would move entities); remove data.augment.ops")
        train = self.read(data.train, data, data.labels)
        labels = self.label_space(train, data)
        types = sorted({n[2:] for n in labels.names if n != "O"})
        splits = grouped_splits(data, lambda s: train if s == data.train else self.read(s, data, types), split_by_document)
        log.info("data: %s", ", ".join(f"{name} {len(ex)} sentences" for name, ex in splits.items()))
        return {name: (ex, self.targets(ex, labels)) for name, ex in splits.items()}, labels

    def targets(self, examples: TaggedExamples, labels: LabelSpace) -> np.ndarray:
        """(N, W) label ids of every word, -100 past each sentence's end."""
        index = {n: i for i, n in enumerate(labels.names)}
        out = np.full((len(examples), max((len(w) for w in examples.words), default=0)), IGNORE_INDEX, dtype=np.int64)
        for i, tags in enumerate(examples.tags or []):
            out[i, :len(tags)] = [index[t] for t in tags]
        return out

    def read_labeled(self, source: str, data: DataConfig, labels: LabelSpace) -> tuple[TaggedExamples, np.ndarray]:
        """A labeled file for evaluation; a tag of a type the model does not know is an error at its line."""
        examples = self.read(source, data, sorted({n[2:] for n in labels.names if n != "O"}))
        if examples.tags is None:
            raise DataError(f"{source} has no tags to evaluate against; give a labeled file (CoNLL with a tag column, or JSONL with tags/entities)")
        return examples, self.targets(examples, labels)

    def read_inputs(self, source: str, data: DataConfig) -> TaggedExamples:
        """Sentences to tag from a file: CoNLL or JSONL as in training, or texts of a CSV/TSV/Parquet/TXT column."""
        path = Path(source)
        if path.suffix.lower() in (".csv", ".tsv", ".parquet"):
            return self.inputs(read_examples(source, data, labeled=False).texts, None, data)
        return self.read(source, data, None)

    def inputs(self, texts: Sequence[str], pairs: Sequence[str] | None, data: DataConfig) -> TaggedExamples:
        """Raw texts as words (whitespace words; characters for Chinese) with their offsets in the text."""
        words, offsets = zip(*(split_words(t) for t in texts)) if texts else ((), ())
        return TaggedExamples(Path("<input>"), list(map(list, words)), None, list(range(1, len(texts) + 1)),
                              [str(i) for i in range(len(texts))], list(texts), list(map(list, offsets)))

    def build_model(self, source: str, labels: LabelSpace, cfg: ModelConfig) -> nn.Module:
        """The checkpoint with a token-classification head (and its casing embeddings and CRF when asked for)."""
        names = labels.names
        model = from_pretrained(AutoModelForTokenClassification, source, num_labels=len(names), id2label=dict(enumerate(names)),
                                label2id={n: i for i, n in enumerate(names)}, ignore_mismatched_sizes=True, **model_kwargs(source, cfg))
        if model.config.pad_token_id is None and getattr(model.config, "eos_token_id", None) is not None:
            eos = model.config.eos_token_id
            model.config.pad_token_id = eos[0] if isinstance(eos, list) else eos
        if self.uses_casing(load_tokenizer(source)):
            widen_token_types(model, NUM_CASES)
        if self.cfg.crf:
            model.crf = CRF(len(names), names)
            load_crf_weights(model.crf, source)
        return model

    def load_model(self, path: str, labels: LabelSpace) -> nn.Module:
        """A saved run: the transformers model and, with ``task.crf``, its CRF weights."""
        return self.build_model(path, labels, ModelConfig())

    def make_split(self, name: str, examples: TaggedExamples, targets: np.ndarray | None, tokenizer: Any,
                   data: DataConfig, labels: LabelSpace) -> TokenSplit:
        """Sub-tokens of every sentence's words (normalized one by one, so offsets stay those of the text)."""
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError("ner needs a fast tokenizer (word ids of sub-tokens); use a model with a tokenizer.json")
        normalize = make_normalizer(data.normalize, data.lowercase, data.fullwidth_to_halfwidth)
        words = [[normalize(w).strip() or w for w in sentence] for sentence in examples.words]
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=data.max_length) if words else {"input_ids": []}
        word_ids = [[-1 if w is None else w for w in enc.word_ids(i)] for i in range(len(words))]
        cut = sum(1 for ids, sentence in zip(word_ids, words) if sentence and max(ids, default=-1) < len(sentence) - 1)
        if cut:
            log.warning("%s: %d of %d sentences are longer than data.max_length=%d tokens; their last words are tagged O",
                        name, cut, len(words), data.max_length)
        types = None
        if self.uses_casing(tokenizer):
            cases = [[case_id(w) for w in sentence] for sentence in examples.words]
            types = Ragged.from_lists([[0 if w < 0 else c[w] for w in ids] for ids, c in zip(word_ids, cases)])
        token_labels = None
        if targets is not None:
            token_labels = Ragged.from_lists([align_labels([None if w < 0 else w for w in ids], t) for ids, t in zip(word_ids, targets)])
        encoded = Encoded(Ragged.from_lists(enc["input_ids"]), types)
        return TokenSplit(name, examples, encoded, targets, int(tokenizer.pad_token_id), Ragged.from_lists(word_ids), token_labels)

    def collate(self, split: TokenSplit, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Padded inputs (casing ids as token types) plus token ``labels`` (-100 off the first sub-tokens)."""
        batch = split.inputs(index)
        if split.token_labels is not None:
            batch["labels"] = pad(split.token_labels, index, IGNORE_INDEX)
        return batch

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        """Cross-entropy of the first sub-tokens, or the CRF's negative log-likelihood of the word tags."""
        labels = batch["labels"]
        outputs = model(**{k: v for k, v in batch.items() if k != "labels"})
        logits = own_positions(outputs.logits, labels.shape[1])  # (B, T, L)
        if not self.cfg.crf:
            return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX), outputs
        words, mask, positions = gather_words(logits, labels != IGNORE_INDEX)
        return crf_layer(model)(words, mask, labels.gather(1, positions)), outputs

    def infer(self, model: nn.Module, split: TokenSplit, batch_size: int) -> np.ndarray:
        """(N, W, 2): predicted label id and its probability for every word (0 and 0 for words cut off)."""
        device = next(model.parameters()).device
        width = max((len(w) for w in split.examples.words), default=0)
        out = np.zeros((len(split), max(1, width), 2), dtype=np.float32)
        crf = crf_layer(model) if self.cfg.crf else None
        with torch.inference_mode():
            for index in eval_batches(split.lengths, batch_size):
                batch = {k: v.to(device) for k, v in split.inputs(index).items()}
                logits = own_positions(model(**batch).logits.float(), batch["input_ids"].shape[1])  # (B, T, L)
                starts = pad(split.word_ids, index, -1)
                starts = torch.cat([starts[:, :1] >= 0, (starts[:, 1:] >= 0) & (starts[:, 1:] != starts[:, :-1])], 1).to(device)
                words, mask, positions = gather_words(logits, starts)
                ids = crf(words, mask) if crf is not None else words.argmax(-1)
                probs = words.softmax(-1).gather(2, ids.unsqueeze(2)).squeeze(2)
                word_index = pad(split.word_ids, index, -1).to(device).gather(1, positions)
                for j, i in enumerate(index):
                    keep = (mask[j] & starts[j].gather(0, positions[j])).cpu().numpy()
                    target = word_index[j].cpu().numpy()[keep]
                    out[i, target, 0], out[i, target, 1] = ids[j].cpu().numpy()[keep], probs[j].cpu().numpy()[keep]
        return out

    def metrics(self, outputs: np.ndarray, targets: np.ndarray, labels: LabelSpace) -> dict[str, Any]:
        """Entity-level precision, recall, F1 (micro: ``f1``; macro; per type), token accuracy and the entity confusion table."""
        gold, pred = [], []
        for row, target in zip(outputs, targets):
            n = int((target != IGNORE_INDEX).sum())
            gold.append([labels.names[t] for t in target[:n]])
            pred.append([labels.names[int(p)] for p in row[:n, 0]])
        result = ner_metrics(gold, pred)
        tokens = sum(len(g) for g in gold)
        accuracy = sum(a == b for g, p in zip(gold, pred) for a, b in zip(g, p)) / max(tokens, 1)
        return {"f1": result["micro_f1"], "precision": result["micro_precision"], "recall": result["micro_recall"],
                "token_accuracy": accuracy, **result}

    def postprocess(self, outputs: np.ndarray, labels: LabelSpace, top_k: int = 1) -> list[dict[str, Any]]:
        """Tags per word, without text (:meth:`predictions` adds the entities with their offsets)."""
        return [{"tags": [labels.names[int(p)] for p in row[:, 0]]} for row in outputs]

    def predictions(self, outputs: np.ndarray, split: TokenSplit, labels: LabelSpace, top_k: int = 1) -> list[dict[str, Any]]:
        """Per sentence: its text, the entities (type, text, start, end in the text, mean word probability) and the word tags."""
        examples: TaggedExamples = split.examples
        results = []
        for i, row in enumerate(outputs):
            n = len(examples.words[i])
            tags = [labels.names[int(p)] for p in row[:n, 0]]
            spans = bio_to_spans(tags)
            entities = [{"type": kind, "text": examples.texts[i][start:end], "start": start, "end": end,
                         "score": round(float(row[a:b, 1].mean()), 6)}
                        for (a, b, _), (start, end, kind) in zip(spans, word_to_char_spans(spans, examples.offsets[i]))]
            item: dict[str, Any] = {"text": examples.texts[i], "entities": entities, "words": examples.words[i], "tags": tags}
            if examples.tags is not None:
                item["gold"] = [{"type": k, "start": s, "end": e} for s, e, k in examples.entities(i)]
            results.append(item)
        return results

    def baseline(self, splits: dict[str, TokenSplit], labels: LabelSpace) -> dict[str, dict[str, Any]]:
        """A CRF over hand-made word (or character) features, trained on train and scored on validation and test."""
        train: TaggedExamples = splits["train"].examples
        crf = fit_crf(list(zip(train.words, train.tags or [])))
        out = {}
        for name in ("validation", "test"):
            if name in splits and splits[name].examples.tags is not None:
                held: TaggedExamples = splits[name].examples
                out[f"{name} (CRF baseline)"] = ner_metrics(held.tags, predict_crf(crf, held.words))
        return out


def widen_token_types(model: nn.Module, size: int) -> None:
    """Give the token-type embeddings ``size`` rows, each new one a copy of row 0, so an untrained casing id changes nothing."""
    embeddings = model.get_input_embeddings()
    owner = next((m for m in model.modules() if getattr(m, "word_embeddings", None) is embeddings), None)
    table = getattr(owner, "token_type_embeddings", None)
    if table is None:
        raise ConfigError(f"{type(model).__name__} has no token-type embeddings to carry casing; set task.casing=false")
    if table.num_embeddings >= size:
        return
    wider = nn.Embedding(size, table.embedding_dim).to(table.weight.device, table.weight.dtype)
    with torch.no_grad():
        wider.weight[:] = table.weight[0]
    owner.token_type_embeddings = wider
    model.config.type_vocab_size = size
