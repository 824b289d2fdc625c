"""Text generation with causal LMs: greedy or sampled, stop strings, chat templates, streaming, batches.

Decoding runs on ``transformers``' ``generate`` (KV cache, logits processors) under
``torch.inference_mode``; this module adds what users want around it: options checked up
front, the chat template for instruct models, stop strings cut from the text, tokens printed
as they come, and batches of prompts padded on the left and sorted by length.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import torch
from pydantic import Field
from tqdm.auto import tqdm

from lmforge import config as config_mod
from lmforge.config import Section
from lmforge.devices import inference_precision
from lmforge.errors import LmforgeError
from lmforge.models.chat import has_chat_template, render


class GenerateConfig(Section):
    """Decoding options of ``lmforge generate`` and :meth:`Generator.generate`."""

    max_new_tokens: int = Field(128, ge=1, le=32768, description="Most tokens to generate per prompt.")
    temperature: float = Field(0.0, ge=0.0, le=100.0, description="Sampling temperature; 0 decodes greedily.")
    top_k: int | None = Field(None, ge=1, description="Sample only among the k most likely tokens.")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Sample among the likeliest tokens making up probability p.")
    repetition_penalty: float = Field(1.0, gt=0.0, description="Divide scores of tokens already seen by this (>1 repeats less).")
    stop: list[str] = Field(default_factory=list, description="Stop when one of these strings appears; cut it from the output.")
    seed: int | None = Field(None, description="Seed for sampling: the same seed and prompts give the same text.")
    chat: bool | None = Field(None, description="Wrap the prompt in the model's chat template; by default when it has one.")
    system: str | None = Field(None, description="System message for chat models.")
    batch_size: int = Field(8, ge=1, description="Prompts decoded together when generating for many prompts.")


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string, and whether one was found."""
    hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)


def _held_back(text: str, stop: Sequence[str]) -> int:
    """Characters at the end of ``text`` that may be the start of a stop string (not printed yet)."""
    longest = 0
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n
                break
    return longest


class TextStream:
    """Prints generated text as tokens arrive (``generate``'s ``streamer`` interface).

    Text that could begin a stop string is held back until it is clear it does not, and
    nothing after a stop string is printed. Incomplete multi-byte characters wait for their
    last byte.

    Args:
        tokenizer: Decodes the tokens.
        write: Where text goes: a file (stdout by default) or a function taking each piece.
        stop: Stop strings.
    """

    def __init__(self, tokenizer: Any, write: TextIO | Callable[[str], Any] | None = None, stop: Sequence[str] = ()) -> None:
        out = write or sys.stdout
        self._write = out if callable(out) and not hasattr(out, "write") else self._to_file(out)
        self.tokenizer, self.stop = tokenizer, list(stop)
        self.tokens: list[int] = []
        self.printed, self.stopped, self._prompt = 0, False, True

    @staticmethod
    def _to_file(f: Any) -> Callable[[str], None]:
        def write(text: str) -> None:
            f.write(text)
            f.flush()

        return write

    def put(self, value: torch.Tensor) -> None:
        """Receive the prompt (skipped) or the next token(s)."""
        if self._prompt:
            self._prompt = False
            return
        self.tokens.extend(value.reshape(-1).tolist())
        self._emit(final=False)

    def end(self) -> None:
        """Print what was held back."""
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        if self.stopped:
            return
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        text, self.stopped = cut_at_stop(text, self.stop)
        end = len(text)
        if not (final or self.stopped):
            end -= _held_back(text, self.stop)
            while end > self.printed and text[end - 1] == "\ufffd":
                end -= 1
        if end > self.printed:
            self._write(text[self.printed:end])
            self.printed = end


class Generator:
    """A causal LM and its tokenizer, ready to generate.

    Args:
        model: A ``*ForCausalLM`` model.
        tokenizer: Its tokenizer.
    """

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        self.tokenizer.padding_side = "left"  # decoders continue from the last position, so pad in front
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token

    def options(self, options: GenerateConfig | dict[str, Any] | None = None, **overrides: Any) -> GenerateConfig:
        """Validated options: ``options`` with ``overrides`` on top."""
        tree = options.model_dump() if isinstance(options, GenerateConfig) else dict(options or {})
        return config_mod.build(GenerateConfig, {**tree, **overrides}, "generation options")

    def uses_chat(self, opts: GenerateConfig) -> bool:
        """Whether prompts go through the chat template: as ``opts.chat`` says, else when the tokenizer has one."""
        has_template = has_chat_template(self.tokenizer)
        if opts.chat and not has_template:
            raise LmforgeError("this model's tokenizer has no chat template; generate without --chat")
        return opts.chat if opts.chat is not None else has_template

    def prompt_text(self, prompt: str, opts: GenerateConfig) -> str:
        """The text fed to the model: the prompt, or the chat template around it."""
        return render(self.tokenizer, prompt, opts.system)[0] if self.uses_chat(opts) else prompt

    def generation_config(self, opts: GenerateConfig) -> Any:
        """``transformers``' ``GenerationConfig`` for ``opts``, on top of the model's own."""
        gc = copy.deepcopy(self.model.generation_config)
        sample = opts.temperature > 0
        gc.update(max_new_tokens=opts.max_new_tokens, do_sample=sample, repetition_penalty=opts.repetition_penalty,
                  temperature=opts.temperature if sample else 1.0, top_k=(opts.top_k or 0) if sample else None,
                  top_p=(opts.top_p or 1.0) if sample else None, stop_strings=opts.stop or None,
                  pad_token_id=self.tokenizer.pad_token_id, max_length=None)
        return gc

    def _decode_batch(self, texts: list[str], opts: GenerateConfig, streamer: Any = None) -> list[str]:
        # The chat template already holds the special tokens the model expects.
        special = not self.uses_chat(opts)
        return self.generate_ids([self.tokenizer(t, add_special_tokens=special)["input_ids"] for t in texts], opts, streamer)

    def generate_ids(self, prompts: Sequence[Sequence[int]], opts: GenerateConfig, streamer: Any = None,
                     eos_ids: list[int] | None = None) -> list[str]:
        """Continue prompts given as token ids (left-padded into one batch); the new text of each, stop strings cut.

        Every decoding path of lmforge (``lmforge generate``, chat-task prediction, generated
        augmentation) ends here. ``eos_ids`` replace the model's own end-of-sequence ids (a chat
        task also stops at the token that ends the assistant's turn).
        """
        width = max(len(p) for p in prompts)
        pad = int(self.tokenizer.pad_token_id)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, row in enumerate(prompts):
            if len(row):
                ids[i, width - len(row):] = torch.as_tensor(list(row), dtype=torch.long)
                mask[i, width - len(row):] = 1
        device = next(self.model.parameters()).device
        config = self.generation_config(opts)
        if eos_ids:
            config.eos_token_id = list(eos_ids)
        with torch.inference_mode(), inference_precision(device):
            out = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                      generation_config=config, streamer=streamer,
                                      tokenizer=self.tokenizer if opts.stop else None)
        new = self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        return [cut_at_stop(t, opts.stop)[0] for t in new]

    def generate(self, prompts: str | Sequence[str], options: GenerateConfig | dict[str, Any] | None = None, *,
                 stream: TextIO | Callable[[str], Any] | bool | None = None, progress: str | None = None,
                 **overrides: Any) -> str | list[str]:
        """Continue ``prompts``; a single prompt gives a string, a list gives a list in the same order.

        Args:
            prompts: One prompt or many (decoded ``batch_size`` at a time, shortest together).
            options: A :class:`GenerateConfig` or dict; keyword ``overrides`` go on top.
            stream: Print tokens as they come: True for stdout, or a file or function. One prompt only.
            progress: Label of a progress bar over the batches (shown from two batches on).
        """
        opts = self.options(options, **overrides)
        single = isinstance(prompts, str)
        texts = [self.prompt_text(p, opts) for p in ([prompts] if single else list(prompts))]
        if opts.seed is not None:
            torch.manual_seed(opts.seed)
        if stream:
            if len(texts) != 1:
                raise LmforgeError("streaming works one prompt at a time; generate the others without stream")
            streamer = TextStream(self.tokenizer, None if stream is True else stream, opts.stop)
            result = self._decode_batch(texts, opts, streamer)
            return result[0] if single else result
        lengths = [len(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        outputs: list[str] = [""] * len(texts)
        starts = range(0, len(order), opts.batch_size)
        for start in tqdm(starts, desc=progress or "generating", unit="batch", disable=len(starts) < 2, leave=False):
            picked = order[start:start + opts.batch_size]
            for i, text in zip(picked, self._decode_batch([texts[i] for i in picked], opts), strict=True):
                outputs[i] = text
        return outputs[0] if single else outputs

