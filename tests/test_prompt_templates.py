"""Prompt templates: parsing, rendering (English and Chinese), slot checks and truncation."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.errors import ConfigError
from lmforge.prompting.templates import BUILTIN, Template, builtin, fit_slots, is_chinese, truncate_tokens


def test_parse_and_render() -> None:
    t = Template.parse("{text} It was {mask}.")
    assert t.slots == ["text", "mask"]
    assert t.render(text="a fine film", mask="[MASK]") == "a fine film It was [MASK]."
    assert t.prefix("mask", text="x") == "x It was "


def test_chinese_template_renders_without_spaces() -> None:
    t = Template.parse("评论：{text}\n情感：{label}")
    assert t.render(text="这部电影很好", label="正面") == "评论：这部电影很好\n情感：正面"
    assert t.prefix("label", text="很好") == "评论：很好\n情感："


def test_pair_template_and_literal_braces() -> None:
    t = Template.parse("{{json}} {text} ? {mask} , {text_pair}")
    assert t.slots == ["text", "mask", "text_pair"]
    assert t.render(text="A", text_pair="B", mask="_") == "{json} A ? _ , B"


@pytest.mark.parametrize("source, message", [
    ("{text} was {answer}", r"unknown slot \{answer\}"),
    ("{text} was {mask", r"unmatched '\{'"),
    ("{text} was }", r"unmatched '\}'"),
])
def test_bad_templates_are_rejected(source: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Template.parse(source, "prompt.templates.cloze")


def test_missing_slot_names_template_method_and_example() -> None:
    t = Template.parse("{text} It was great.", "prompt.templates.cloze")
    with pytest.raises(ConfigError) as err:
        t.require(("text", "mask"), "cloze", "{text} It was {mask}.")
    msg = str(err.value)
    assert "prompt.templates.cloze" in msg and "{mask}" in msg and "cloze method" in msg and "\n" not in msg


def test_label_must_come_last_for_decoders() -> None:
    with pytest.raises(ConfigError, match="must be the last slot"):
        Template.parse("{label}: {text}").require_last("label", "likelihood")
    Template.parse("{text} => {label}.").require_last("label", "likelihood")


def test_every_builtin_parses_with_its_slots() -> None:
    for (task, _language), templates in BUILTIN.items():
        assert "mask" in templates.parsed("cloze").slots
        assert templates.parsed("prompt").slots[-1] == "label"
        assert "label" in templates.parsed("description").slots
        if task == "entailment":
            assert "text_pair" in templates.parsed("instruction").slots
    assert builtin("sentiment", "zh").cloze.endswith("{mask}。")
    with pytest.raises(ConfigError, match="tasks: entailment, intent, sentiment, topic"):
        builtin("summarization", "en")


def test_truncation_keeps_the_template_whole(tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    text = " ".join(["good movie"] * 40)
    assert len(tok(truncate_tokens(tok, text, 5), add_special_tokens=False)["input_ids"]) == 5
    t = Template.parse("{text} it was {mask} .")
    values = fit_slots(tok, t, text, None, 20, mask=tok.mask_token)
    ids = tok(t.render(**values))["input_ids"]
    assert len(ids) <= 20 and tok.mask_token_id in ids
    pair = fit_slots(tok, Template.parse("{text} ? {mask} , {text_pair}"), text, "bad", 16, mask=tok.mask_token)
    assert pair["text_pair"] == "bad" and len(pair["text"]) < len(text)


def test_language_detection() -> None:
    assert is_chinese(["这部电影很好", "很差", "ok"])
    assert not is_chinese(["a fine film", "bad", "很好"])


def test_cloze_prompt_keeps_its_mask_when_cut(tiny_bert: Path) -> None:
    from lmforge.prompting.mlm import Cloze, load_mlm
    from lmforge.prompting.verbalizers import build_verbalizer

    model, tok = load_mlm(str(tiny_bert))
    cloze = Cloze(model, tok, Template.parse("{text} it was {mask} ."), build_verbalizer(["0", "1"], "sentiment", "en"), 16)
    inputs = cloze.encode(["good movie " * 30, "bad [MASK] plot"])
    for i in range(2):
        row = inputs.ids[i]
        assert len(row) <= 16 and row[inputs.position[i]] == tok.mask_token_id
    assert list(inputs.ids[1]).count(tok.mask_token_id) == 2 and inputs.position[1] == 6  # the text's own [MASK] is skipped
    with pytest.raises(ConfigError, match="does not fit in data.max_length=8"):
        Cloze(model, tok, Template.parse("it was a very very very good {text} movie , {mask}"), cloze.verbalizer, 8).encode(["x"])


def test_chat_wrapped_keeps_slots_and_braces(tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    from lmforge.prompting.templates import chat_wrapped

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    wrapped = chat_wrapped(Template.parse("Review {{1}}: {text}\nSentiment: {label}"), tokenizer, "Rate {it}.")
    assert wrapped.source == ("<|im_start|>system\nRate {{it}}.<|im_end|>\n<|im_start|>user\nReview {{1}}: {text}<|im_end|>\n"
                              "<|im_start|>assistant\nSentiment: {label}")
    assert wrapped.slots == ["text", "label"] and wrapped.prefix("label", text="ok").endswith("assistant\nSentiment: ")
    assert wrapped.render(text="ok", label="good").startswith("<|im_start|>system\nRate {it}.")
    one_line = chat_wrapped(Template.parse("{text} It was {label}."), tokenizer)
    assert one_line.source == "<|im_start|>user\n{text} It was<|im_end|>\n<|im_start|>assistant\n{label}"
