"""NER and extractive QA tasks: alignment through collate, spans through predict, windows, CRF, end to end, bad input."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import lmforge
from forge_testing import tiny_config
from lmforge import artifacts, config
from lmforge.cli import main
from lmforge.config import DataConfig, EnsembleConfig, TaskConfig
from lmforge.data.labels import LabelSpace
from lmforge.data.squad import read_squad
from lmforge.data.tagging import label_names, read_tagged
from lmforge.errors import ConfigError, LmforgeError
from lmforge.models.build import load_tokenizer
from lmforge.models.crf import CRF
from lmforge.tasks import get_task
from lmforge.tasks.token import case_id
from span_data import toy_questions, toy_sentences, write_conll, write_jsonl, write_squad

LABELS = LabelSpace("tags", label_names(["LOC", "PER"]))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # The command line points lmforge's log at the (captured) stderr of the test that ran it; later tests must not write there.
    logger = logging.getLogger("lmforge")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved


def ner(**options: object) -> object:
    return get_task(TaskConfig(name="ner", **options))


def test_alignment_english_multi_piece_words(tiny_bert: Path, tmp_path: Path) -> None:
    # "goodbad" is good ##b ##a ##d: only its first piece carries B-PER; [CLS]/[SEP] and the rest are ignored.
    path = write_jsonl(tmp_path / "t.jsonl", [{"tokens": ["the", "goodbad", "film"], "tags": ["O", "B-PER", "O"]}])
    task, tokenizer = ner(casing=False), load_tokenizer(str(tiny_bert))
    examples = read_tagged(path)
    split = task.make_split("x", examples, task.targets(examples, LABELS), tokenizer, DataConfig(), LABELS)
    batch = task.collate(split, np.array([0]))
    pieces = tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    assert pieces == ["[CLS]", "the", "good", "##b", "##a", "##d", "film", "[SEP]"]
    per = LABELS.names.index("B-PER")
    assert batch["labels"][0].tolist() == [-100, 0, per, -100, -100, -100, 0, -100]
    assert "token_type_ids" not in batch


def test_alignment_chinese_characters_and_casing_ids(tiny_bert: Path, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "zh.jsonl", [{"text": "电影很好", "entities": [[0, 2, "LOC"]]}])
    task, tokenizer = ner(), load_tokenizer(str(tiny_bert))
    examples = read_tagged(path)
    assert examples.words == [["电", "影", "很", "好"]]
    split = task.make_split("x", examples, task.targets(examples, LABELS), tokenizer, DataConfig(), LABELS)
    batch = task.collate(split, np.array([0]))
    b, i = LABELS.names.index("B-LOC"), LABELS.names.index("I-LOC")
    assert batch["labels"][0].tolist() == [-100, b, i, 0, 0, -100]
    # The tiny tokenizer lowercases, so casing rides in the token types (no letters here: 0).
    assert batch["token_type_ids"][0].tolist() == [0] * 6
    assert [case_id(w) for w in ["the", "Good", "EU", "iPhone", "1996", "A"]] == [1, 2, 3, 4, 0, 2]


def test_spans_bio_round_trip_through_predictions(tiny_bert: Path) -> None:
    # A model that predicts the gold tags gives back the gold character spans of the original text.
    task, tokenizer = ner(), load_tokenizer(str(tiny_bert))
    texts = ["the Good Nice film  was Bad", "Awful story"]
    examples = task.inputs(texts, None, DataConfig())
    gold = [["O", "B-PER", "I-PER", "O", "O", "B-LOC"], ["B-LOC", "O"]]
    outputs = np.zeros((2, 6, 2), dtype=np.float32)
    for row, tags in enumerate(gold):
        outputs[row, :len(tags), 0] = [LABELS.names.index(t) for t in tags]
        outputs[row, :len(tags), 1] = 0.9
    split = task.make_split("x", examples, None, tokenizer, DataConfig(), LABELS)
    found = task.predictions(outputs, split, LABELS)
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in found[0]["entities"]] == [
        ("PER", "Good Nice", 4, 13), ("LOC", "Bad", 24, 27)]
    assert found[1]["entities"][0] | {"score": 0} == {"type": "LOC", "text": "Awful", "start": 0, "end": 5, "score": 0}
    assert found[0]["tags"] == gold[0]


def test_qa_windows_map_back_to_the_exact_answer(tiny_bert: Path, tmp_path: Path) -> None:
    context = " ".join(["the film was very long"] * 12 + ["it was great , said the actor ."])
    answer = {"text": "great", "answer_start": context.index("great")}
    path = write_jsonl(tmp_path / "q.jsonl", [{"context": context, "question": "what was it ?", "answers": [answer]}])
    task, tokenizer = get_task(TaskConfig(name="qa", stride=8)), load_tokenizer(str(tiny_bert))
    examples = read_squad(path)
    split = task.make_split("x", examples, np.arange(1), tokenizer, DataConfig(max_length=32), LabelSpace("span"))
    features = split.features
    assert len(features) > 3
    inside = [k for k, s in enumerate(features.start_positions) if s != features.cls_index[k]]
    assert inside, "the answer lies inside some window"
    k = inside[-1]
    s, e = features.start_positions[k], features.end_positions[k]
    assert context[features.offsets[k][s][0]:features.offsets[k][e][1]] == "great"
    logits = torch.zeros(len(features), 32)
    starts, ends = logits.clone(), logits.clone()
    starts[k, s], ends[k, e] = 5.0, 5.0

    # infer batches windows by length: the stand-in model finds each window's logits by its token ids.
    by_ids = {tuple(features.input_ids[j]): j for j in range(len(features))}

    class Lookup(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: object) -> object:
            rows = [by_ids[tuple(r[m.bool()].tolist())] for r, m in zip(input_ids, attention_mask)]
            width = input_ids.shape[1]
            return type("Out", (), {"start_logits": starts[rows][:, :width], "end_logits": ends[rows][:, :width]})

    outputs = task.infer(Lookup(), split, batch_size=3)
    prediction = task.predictions(outputs, split, LabelSpace("span"))[0]
    assert prediction["answer"] == "great" and context[prediction["start"]:prediction["end"]] == "great"
    assert task.split_metrics(outputs, split, LabelSpace("span"))["exact_match"] == 1.0


def test_crf_matches_brute_force() -> None:
    torch.manual_seed(0)
    names = ["O", "B-X", "I-X"]
    crf = CRF(3, names)
    with torch.no_grad():
        crf.transitions.normal_()
        crf.start.normal_()
        crf.end.normal_()
    emissions = torch.randn(2, 4, 3)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])

    def score(path: tuple[int, ...], row: int) -> float:
        t, s = crf._scores()
        total = s[path[0]] + emissions[row, 0, path[0]] + crf.end[path[-1]]
        for w in range(1, len(path)):
            total = total + t[path[w - 1], path[w]] + emissions[row, w, path[w]]
        return float(total.detach())

    for row, length in ((0, 4), (1, 3)):
        paths = list(itertools.product(range(3), repeat=length))
        scores = torch.tensor([score(p, row) for p in paths])
        best = paths[int(scores.argmax())]
        assert crf.decode(emissions[row:row + 1], mask[row:row + 1])[0, :length].tolist() == list(best)
        assert 1 not in [a for a, b in zip((0,) + best, best) if b == 2 and a == 0]  # O -> I-X never decoded
        gold = torch.tensor([list(best) + [0] * (4 - length)])
        nll = crf(emissions[row:row + 1], mask[row:row + 1], gold)
        assert nll.item() == pytest.approx(float(torch.logsumexp(scores, 0)) - score(best, row), abs=1e-4)


def _ner_config(tiny_bert: Path, tmp_path: Path, **task: object) -> dict:
    train = write_conll(tmp_path / "train.txt", toy_sentences(160))
    cfg = tiny_config(tiny_bert, train, tmp_path / "run", task={"name": "ner", **task},
                      train={"epochs": 12, "batch_size": 16, "lr": 5e-3, "head_lr": 5e-3},
                      data={"split": {"validation": 0.2, "seed": 0}, "test": str(write_conll(tmp_path / "test.txt", toy_sentences(30, 1)))},
                      output={"baseline": True, "report": True})
    return cfg


@pytest.mark.parametrize("crf", [False, True])
def test_ner_end_to_end(tiny_bert: Path, tmp_path: Path, crf: bool, capsys: pytest.CaptureFixture) -> None:
    result = lmforge.finetune(_ner_config(tiny_bert, tmp_path, crf=crf))
    metrics = result.metrics
    assert metrics["test"]["f1"] > 0.6, metrics["test"]
    assert {"per_class", "confusion", "macro_f1"} <= set(metrics["test"]) and "test (CRF baseline)" in metrics
    report = (result.run_dir / "report.md").read_text()
    assert "Entity confusion (test)" in report and (result.run_dir / "plots" / "per_type_f1_test.png").is_file()
    model = artifacts.load(result.run_dir)
    assert model.kind == "classifier" and model.describe()["task"] == "ner"
    assert (getattr(model.model, "crf", None) is not None) == crf
    found, empty = model.predict(["the Good film was Bad", "   "])
    assert [(e["type"], e["text"]) for e in found["entities"]] == [("PER", "Good"), ("LOC", "Bad")]
    assert empty["entities"] == [] and empty["tags"] == []
    again = model.evaluate(str(tmp_path / "test.txt"))
    assert again["f1"] == pytest.approx(metrics["test"]["f1"])
    assert main(["predict", str(result.run_dir), "the Good film was Bad"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["entities"][0]["start"] == 4
    assert main(["evaluate", str(result.run_dir), "--data", str(tmp_path / "test.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["f1"] == pytest.approx(metrics["test"]["f1"])


def test_ner_lora_adapter(tiny_bert: Path, tmp_path: Path) -> None:
    cfg = _ner_config(tiny_bert, tmp_path, crf=True)
    cfg["tuning"] = {"method": "lora", "r": 4}
    cfg["train"].update({"lr": 1e-2, "epochs": 8})
    cfg["output"]["baseline"] = False
    result = lmforge.finetune(cfg)
    model = artifacts.load(result.run_dir)
    assert model.kind == "adapter"
    assert model.evaluate(str(tmp_path / "test.txt"))["f1"] == pytest.approx(result.metrics["test"]["f1"])
    # The widened casing embeddings train with the head, so they are saved with the adapter.
    saved = json.loads((result.run_dir / "model" / "adapter_config.json").read_text())["modules_to_save"]
    assert "crf" in saved and any("token_type_embeddings" in m for m in saved)


def _qa_config(tiny_bert: Path, tmp_path: Path) -> dict:
    train = write_squad(tmp_path / "train.json", toy_questions(240))
    return tiny_config(tiny_bert, train, tmp_path / "run", task={"name": "qa", "stride": 8},
                       train={"epochs": 6, "batch_size": 16, "lr": 3e-3, "head_lr": 3e-3},
                       data={"split": {"validation": 0.25, "seed": 0}, "max_length": 32},
                       output={"baseline": True, "report": True})


def test_qa_end_to_end(tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config_file = tmp_path / "qa.yaml"
    config_file.write_text(json.dumps(_qa_config(tiny_bert, tmp_path)))
    assert main(["-q", "finetune", str(config_file)]) == 0  # the command line, sample answers printed
    assert "sample predictions" in capsys.readouterr().out
    run_dir = tmp_path / "run"
    metrics = json.loads((run_dir / "eval_results.json").read_text())
    assert metrics["validation"]["f1"] > 0.6 and "validation (lexical baseline)" in metrics, metrics
    model = artifacts.load(run_dir)
    assert model.describe()["task"] == "qa"
    context = "the story was very nice and the actor was sad"
    answer = model.predict(["what is good ?"], pairs=[context])[0]
    assert answer["answer"] == "nice" and context[answer["start"]:answer["end"]] == "nice"
    with pytest.raises(LmforgeError, match="needs a context for every question"):
        model.predict(["what is good ?"])
    rows = toy_questions(20, seed=5)
    assert model.evaluate(str(write_jsonl(tmp_path / "held.jsonl", rows)))["f1"] > 0.6
    assert main(["predict", str(run_dir), "--question", "what is good ?", "--context", context]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["answer"] == "nice"
    out = tmp_path / "answers.jsonl"
    assert main(["predict", str(run_dir), "--file", str(tmp_path / "held.jsonl"), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 20


def test_bad_input_one_liners(tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bmes = tmp_path / "zh.txt"
    bmes.write_text("中 M-ORG\n文 E-ORG\n好 O\n\n电 S-LOC\n", encoding="utf-8")
    assert read_tagged(bmes).repairs == 1
    unknown = write_conll(tmp_path / "v.txt", [[("Good", "B-FOO")]])
    mismatch = write_jsonl(tmp_path / "m.jsonl", [{"tokens": ["a", "b"], "tags": ["O"]}])
    bad_answer = write_jsonl(tmp_path / "a.jsonl", [{"id": "x7", "context": "the film", "question": "what ?",
                                                    "answers": [{"text": "plot", "answer_start": 0}]}])
    train = write_conll(tmp_path / "train.txt", toy_sentences(40))
    cases = [
        (tiny_config(tiny_bert, train, tmp_path / "r1", task={"name": "ner"}, data={"validation": str(unknown)}), "v.txt, line 3"),
        (tiny_config(tiny_bert, mismatch, tmp_path / "r2", task={"name": "ner"}), "m.jsonl, line 1: 2 tokens but 1 tags"),
        (tiny_config(tiny_bert, bad_answer, tmp_path / "r3", task={"name": "qa"}), "a.jsonl, line 1"),
        (tiny_config(tiny_bert, write_squad(tmp_path / "a.json", [json.loads(bad_answer.read_text()) | {"title": "t"}]), tmp_path / "r5",
                     task={"name": "qa"}), "a.json, question x7: the answer 'plot' does not occur in the context"),
        (tiny_config(tiny_bert, write_squad(tmp_path / "q.json", toy_questions(20)), tmp_path / "r4", task={"name": "qa", "stride": 0},
                     data={"max_length": 12}), "stride is 0"),
    ]
    for number, (cfg, expected) in enumerate(cases):
        config = tmp_path / f"cfg{number}.yaml"
        config.write_text(json.dumps(cfg))
        assert main(["-q", "finetune", str(config)]) == 2
        err = capsys.readouterr().err.strip()
        last = err.splitlines()[-1]
        assert last.startswith("error: ") and expected in last and "Traceback" not in err, err
    skipped = read_squad(write_jsonl(tmp_path / "s.jsonl", [json.loads(bad_answer.read_text())] + toy_questions(3)), on_bad_rows="skip")
    assert len(skipped) == 3


def test_ensembles_refuse_span_tasks() -> None:
    with pytest.raises(ConfigError, match="task ner predicts spans"):
        config.load(EnsembleConfig, {"data": {"train": "x.txt"}, "task": {"name": "ner"}})


@pytest.mark.parametrize("task", ["ner", "qa"])
def test_prompt_tuning_scores_the_inputs_own_positions(tiny_bert: Path, tmp_path: Path, task: str) -> None:
    # Prompt tuning puts virtual tokens before the input: losses and predictions must skip them.
    data = write_conll(tmp_path / "t.txt", toy_sentences(40)) if task == "ner" else write_squad(tmp_path / "q.json", toy_questions(40))
    cfg = tiny_config(tiny_bert, data, tmp_path / "run", task={"name": task, "stride": 8}, train={"epochs": 1},
                      data={"max_length": 32, "split": {"validation": 0.25, "seed": 0}})
    cfg["tuning"] = {"method": "prompt", "num_virtual_tokens": 4}
    result = lmforge.finetune(cfg)
    model = artifacts.load(result.run_dir)
    assert model.kind == "adapter" and model.evaluate(str(data))["f1"] >= 0.0
    found = model.predict(["the Good film"]) if task == "ner" else model.predict(["what is good ?"], pairs=["the film was good"])
    assert len(found) == 1 and (task == "ner" or found[0]["answer"] in "the film was good")
