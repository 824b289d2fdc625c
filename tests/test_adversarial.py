"""FGM, PGD and FreeLB perturb only the embeddings and restore them; the text adversary trains on the worst typo copy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.config import AdversarialConfig
from lmforge.errors import LmforgeError
from lmforge.training.adversarial import (
    FGM,
    PGD,
    FreeLB,
    TextAdversary,
    consistency_loss,
    per_example_loss,
    word_embeddings,
)
from lmforge.training.hooks import StepContext


@pytest.fixture
def tiny_classifier(tiny_bert: Path) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2).eval()


def batch() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[2, 5, 6, 7, 3, 0], [2, 8, 9, 3, 0, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": torch.tensor([1, 0])}


def loss_fn(model: torch.nn.Module, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, object]:
    out = model(**b)
    return out.loss, out


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def run_hook(hook: object, model: torch.nn.Module, spy: list) -> dict[str, torch.Tensor]:
    """Clean backward, then the hook; ``spy`` records the weights seen by every extra forward pass."""
    b = batch()
    loss, _ = loss_fn(model, b)
    loss.backward()
    clean = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    def spying_loss(m: torch.nn.Module, bb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, object]:
        spy.append((snapshot(m), bb))
        return loss_fn(m, bb)

    hook.after_backward(StepContext(spying_loss, lambda x: x.backward(), 0, 1), model, b)
    return clean


@pytest.mark.parametrize("method", ["fgm", "pgd"])
def test_fgm_pgd_perturb_only_embeddings_and_restore(tiny_classifier: torch.nn.Module, method: str) -> None:
    model = tiny_classifier
    cfg = AdversarialConfig(method=method, epsilon=0.5, alpha=0.3, steps=3)
    hook = FGM(cfg) if method == "fgm" else PGD(cfg)
    before, spy = snapshot(model), []
    clean = run_hook(hook, model, spy)
    assert len(spy) == (1 if method == "fgm" else 3)
    emb_name = next(n for n, p in model.named_parameters() if p is word_embeddings(model).weight)
    for seen, _ in spy:
        changed = {n for n in before if not torch.equal(seen[n], before[n])}
        assert changed == {emb_name}
        assert float(torch.linalg.vector_norm(seen[emb_name] - before[emb_name])) <= 0.5 + 1e-5
    after = snapshot(model)
    assert all(torch.equal(after[n], before[n]) for n in before)  # restored exactly
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert any(not torch.allclose(grads[n], clean[n]) for n in clean)  # adversarial gradients were added


def test_fgm_step_is_epsilon_along_the_gradient(tiny_classifier: torch.nn.Module) -> None:
    model, spy = tiny_classifier, []
    weight = word_embeddings(model).weight
    before = weight.detach().clone()
    b = batch()
    loss_fn(model, b)[0].backward()
    g = weight.grad.clone()
    def spying_loss(m: torch.nn.Module, bb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, object]:
        spy.append(weight.detach().clone())
        return loss_fn(m, bb)

    fgm = FGM(AdversarialConfig(method="fgm", epsilon=0.7))
    fgm.after_backward(StepContext(spying_loss, lambda x: x.backward(), 0, 1), model, b)
    torch.testing.assert_close(spy[0] - before, 0.7 * g / torch.linalg.vector_norm(g))


def test_pgd_keeps_clean_plus_last_adversarial_gradient(tiny_classifier: torch.nn.Module) -> None:
    model, spy = tiny_classifier, []
    clean = run_hook(PGD(AdversarialConfig(method="pgd", epsilon=1.0, alpha=0.3, steps=2)), model, spy)
    # Recompute the last adversarial gradient at the weights PGD used for its last pass.
    last_weights, b = spy[-1]
    probe = type(model)(model.config)
    probe.load_state_dict({**model.state_dict(), **last_weights})
    probe.eval()
    loss_fn(probe, b)[0].backward()
    for n, p in model.named_parameters():
        if n in clean:
            expected = clean[n] + dict(probe.named_parameters())[n].grad
            torch.testing.assert_close(p.grad, expected, rtol=1e-4, atol=1e-6)


def test_freelb_perturbs_input_embeddings_within_epsilon(tiny_classifier: torch.nn.Module) -> None:
    model, spy = tiny_classifier, []
    before = snapshot(model)
    run_hook(FreeLB(AdversarialConfig(method="freelb", epsilon=0.4, alpha=0.2, steps=3)), model, spy)
    assert len(spy) == 3
    emb = word_embeddings(model)
    for seen, b in spy:
        assert "input_ids" not in b and "inputs_embeds" in b
        assert all(torch.equal(seen[n], before[n]) for n in before)  # weights untouched
        delta = b["inputs_embeds"].detach() - emb(batch()["input_ids"]).detach()
        norms = torch.linalg.vector_norm(delta.flatten(1), dim=1)
        assert bool((norms <= 0.4 + 1e-5).all())
        assert float(delta[1, 4:].abs().max()) == 0.0  # padding is never perturbed


@pytest.fixture
def tiny_tokenizer(tiny_bert: Path) -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert)


def text_batch(tokenizer: object, pairs: bool = False) -> dict[str, torch.Tensor]:
    first = ["the movie was great", "a very boring story"]
    enc = tokenizer(first, ["nice actor", "sad plot"] if pairs else None, padding=True, return_tensors="pt")
    return {**enc, "labels": torch.tensor([1, 0])}


@pytest.mark.parametrize("pairs", [False, True])
def test_text_adversary_decodes_segments_and_encodes_them_back(tiny_tokenizer: object, pairs: bool) -> None:
    hook = TextAdversary(AdversarialConfig(method="text"), tiny_tokenizer)
    b = text_batch(tiny_tokenizer, pairs)
    texts = hook.texts(b)
    assert texts[0] == (["the movie was great", "nice actor"] if pairs else ["the movie was great"])
    again = hook.encode(texts, b)
    assert set(again) == {"input_ids", "attention_mask", "token_type_ids"}
    assert torch.equal(again["input_ids"], b["input_ids"]) and torch.equal(again["token_type_ids"], b["token_type_ids"])


def test_text_adversary_trains_on_the_worst_copy(tiny_classifier: torch.nn.Module, tiny_tokenizer: object) -> None:
    model, spy = tiny_classifier, []
    hook = TextAdversary(AdversarialConfig(method="text", candidates=6, rate=0.5), tiny_tokenizer, seed=3)
    b = text_batch(tiny_tokenizer)
    before = snapshot(model)
    loss_fn(model, b)[0].backward()
    clean = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    def spying_loss(m: torch.nn.Module, bb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, object]:
        spy.append(bb)
        return loss_fn(m, bb)

    hook.after_backward(StepContext(spying_loss, lambda x: x.backward(), 0, 1), model, b)
    assert len(spy) == 1 and hook.calls == 1
    hard = spy[0]
    assert torch.equal(hard["labels"], b["labels"])
    assert not torch.equal(hard["input_ids"], b["input_ids"][:, :hard["input_ids"].shape[1]])  # typos changed tokens
    # Recompute every candidate's loss: the one trained on is each example's highest.
    rng_hook = TextAdversary(AdversarialConfig(method="text", candidates=6, rate=0.5), tiny_tokenizer, seed=3)
    import random

    rng = random.Random("3:0:0")
    copies = [[rng_hook.perturb(t, rng, 0.5) for t in segs] for segs in rng_hook.texts(b) for _ in range(6)]
    enc = rng_hook.encode(copies, b)
    with torch.no_grad():
        losses = per_example_loss(model(**enc).logits, b["labels"].repeat_interleave(6)).view(2, 6)
    for i in range(2):
        worst = int(losses[i].argmax()) + 6 * i
        row = enc["input_ids"][worst][enc["attention_mask"][worst].bool()]
        assert torch.equal(hard["input_ids"][i][hard["attention_mask"][i].bool()], row)
    assert all(torch.equal(snapshot(model)[n], before[n]) for n in before)  # weights untouched
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert any(not torch.allclose(grads[n], clean[n]) for n in clean)  # the adversarial loss was added
    assert model.training is False  # the fixture's eval mode is left as it was


def test_consistency_loss_on_hand_computed_examples() -> None:
    import math

    # Softmax: KL(p || q) with p = (0.5, 0.5) from equal logits, q = (e/(1+e), 1/(1+e)).
    q1 = math.e / (1 + math.e)
    expected = 0.5 * math.log(0.5 / q1) + 0.5 * math.log(0.5 / (1 - q1))
    got = consistency_loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert consistency_loss(torch.tensor([[3.0, -1.0]]), torch.tensor([[3.0, -1.0]]), torch.tensor([1])).item() == pytest.approx(0.0, abs=1e-7)
    # Multi-label: a Bernoulli KL per label, summed over labels; p = sigmoid(0) = 0.5, q = sigmoid(1).
    s1 = 1 / (1 + math.exp(-1))
    bern = 0.5 * math.log(0.5 / s1) + 0.5 * math.log(0.5 / (1 - s1))
    got = consistency_loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert got.item() == pytest.approx(bern, rel=1e-5)
    # Regression: squared error.
    assert consistency_loss(torch.tensor([[1.0]]), torch.tensor([[3.0]]), torch.tensor([2.0])).item() == pytest.approx(4.0)


class BagOfTokens(torch.nn.Module):
    """Mean of token embeddings through a linear layer: predictions move with every changed token."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.out = torch.nn.Embedding(vocab, 8), torch.nn.Linear(8, 2)
        torch.nn.init.normal_(self.embed.weight, std=3.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None,
                **_: torch.Tensor) -> object:
        from types import SimpleNamespace

        m = attention_mask.unsqueeze(-1).float()
        logits = self.out((self.embed(input_ids) * m).sum(1) / m.sum(1))
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SimpleNamespace(logits=logits, loss=loss)


def test_text_adversary_consistency_adds_kl_from_the_clean_prediction(tiny_tokenizer: object) -> None:
    model, b = BagOfTokens(len(tiny_tokenizer)), text_batch(tiny_tokenizer)
    seen = []

    def run(weight: float) -> tuple[float, torch.Tensor, torch.Tensor]:
        hook = TextAdversary(AdversarialConfig(method="text", candidates=3, rate=0.5, consistency=weight), tiny_tokenizer, seed=1)
        clean_loss, clean_out = loss_fn(model, b)
        assert hook.loss(StepContext(loss_fn, lambda x: None, 0, 1), model, b, clean_loss, clean_out) is clean_loss

        def spying_loss(m: torch.nn.Module, bb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, object]:
            out = loss_fn(m, bb)
            seen.append(out[1].logits.detach())
            return out

        trained = []
        hook.after_backward(StepContext(spying_loss, lambda x: trained.append(x.detach()), 0, 1), model, b)
        return float(trained[0]), clean_out.logits.detach(), seen[-1]

    plain, _, hard_plain = run(0.0)
    weighted, clean_logits, hard = run(2.0)
    torch.testing.assert_close(hard, hard_plain)  # same seed: the same worst copies
    kl = consistency_loss(clean_logits, hard, b["labels"]).item()
    assert kl > 1e-3
    assert weighted == pytest.approx(plain + 2.0 * kl, rel=1e-5)


def test_text_adversary_needs_a_tokenizer() -> None:
    with pytest.raises(LmforgeError, match="tokenizer"):
        TextAdversary(AdversarialConfig(method="text"))


def test_per_example_loss_shapes() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    ce = per_example_loss(logits, torch.tensor([0, 0]))
    torch.testing.assert_close(ce, torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0]), reduction="none"))
    assert per_example_loss(logits, torch.tensor([[1.0, 0.0], [1.0, 1.0]])).shape == (2,)
    torch.testing.assert_close(per_example_loss(torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 2.0])), torch.tensor([1.0, 1.0]))



def test_finetune_with_text_adversary_resumes_identically(tiny_bert: Path, toy_csv: Path, tmp_path: Path) -> None:
    import lmforge
    from forge_testing import tiny_config
    from test_training import _evals, _kill, loss_calls

    train = {"epochs": 2, "save_every": 5, "eval_every": 4, "keep_checkpoints": 5,
             "adversarial": {"method": "text", "candidates": 3}}
    full = lmforge.finetune(tiny_config(tiny_bert, toy_csv, tmp_path / "full", train=train))
    cfg = tiny_config(tiny_bert, toy_csv, tmp_path / "part", train=train)
    with loss_calls(2 * 7 + 1, _kill), pytest.raises(RuntimeError, match="killed"):  # clean + adversarial loss per step
        lmforge.finetune(cfg)
    resumed = lmforge.finetune(cfg, resume=True)
    assert resumed.metrics["validation"] == full.metrics["validation"]
    assert _evals(tmp_path / "part") == _evals(full.run_dir)
