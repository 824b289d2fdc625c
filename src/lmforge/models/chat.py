"""Chat prompts: the one builder of chat-template text for every part of lmforge.

Fine-tuning chat tasks, generation, prompt-based classifiers and augmentation all turn a user
message (and an optional system message and answer) into the text a decoder sees through this
module, so a template quirk is fixed once.
"""

from __future__ import annotations

from typing import Any


def has_chat_template(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` carries a chat template (an instruct model's)."""
    return bool(getattr(tokenizer, "chat_template", None))


def messages(user: str, system: str | None = None) -> list[dict[str, str]]:
    """The system (when given) and user turns."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def render(tokenizer: Any, user: str, system: str | None = None, answer: str | None = None) -> tuple[str, str]:
    """``(prompt, answer)`` texts: the chat template's turns, or a plain layout when the tokenizer has none.

    The prompt ends where the assistant's answer begins. The answer text carries whatever ends
    the assistant's turn (``<|im_end|>``, the EOS token); it is empty when ``answer`` is None.
    """
    if has_chat_template(tokenizer):
        turns = messages(user, system)
        prompt = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
        if answer is None:
            return prompt, ""
        full = tokenizer.apply_chat_template(turns + [{"role": "assistant", "content": answer}], tokenize=False)
        if full.startswith(prompt):
            return prompt, full[len(prompt):]
        return prompt, answer + (tokenizer.eos_token or "")
    head = f"{system}\n\n" if system else ""
    return f"{head}### Instruction:\n{user}\n\n### Response:\n", (answer or "") + (tokenizer.eos_token or "")


def chat_prompt(tokenizer: Any, user: str, system: str | None = None) -> str:
    """``user`` (after a ``system`` turn when given) in the tokenizer's chat template, ready for the answer.

    Raises:
        ValueError: The tokenizer has no chat template (callers say what to do instead).
    """
    if not has_chat_template(tokenizer):
        raise ValueError("the tokenizer has no chat template")
    return render(tokenizer, user, system)[0]
