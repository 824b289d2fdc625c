"""Request and response bodies of the HTTP API (pydantic), shared by the built-in routes and the applications' routers.

Every request names its ``model`` (the service's default model when omitted). Errors have one shape,
:class:`ErrorResponse`, whatever the status. Limits that depend on the service's config (items per
request, characters per text, new tokens) are checked by the routes and answered with 422 naming
the field, e.g. ``texts[3]``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_MODEL = Field(None, description="Model name (GET /v1/models lists them); the service's default model when omitted.",
               examples=["sentiment"])


class Request(BaseModel):
    """Base of request bodies: unknown fields are errors, so a misspelt option is not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _encodable(cls, value: Any) -> Any:
        # JSON may carry lone surrogates ("\\ud800"); tokenizers cannot encode them, so they are refused here as a 422.
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError("text is not valid Unicode (it holds a lone surrogate)") from None
        return value


class ClassifyRequest(Request):
    model: str | None = _MODEL
    texts: list[str] = Field(min_length=1, description="Texts to classify.", examples=[["The service was excellent."]])
    pairs: list[str] | None = Field(None, description="Second texts of sentence-pair models, one per text.")
    top_k: int = Field(1, ge=1, le=1000, description="How many of the likeliest labels to list per text.")


class LabelScore(BaseModel):
    label: str
    score: float


class Classification(BaseModel):
    """One text's prediction; which fields are set depends on the task (single-label, multi-label, regression)."""

    model_config = ConfigDict(extra="allow")

    label: str | None = Field(None, description="The predicted label (single-label tasks).")
    labels: list[str] | None = Field(None, description="Labels above the threshold (multi-label tasks).")
    score: float | None = Field(None, description="Probability of the predicted label.")
    value: float | None = Field(None, description="The predicted value (regression).")
    probabilities: dict[str, float] | None = Field(None, description="Probability of every label.")
    top_k: list[LabelScore] | None = Field(None, description="The top_k likeliest labels, likeliest first.")


class ClassifyResponse(BaseModel):
    model: str
    version: str | None = Field(None, description="When the served run was saved: tells versions apart across a reload.")
    results: list[Classification]


class EmbedRequest(Request):
    model: str | None = _MODEL
    texts: list[str] = Field(min_length=1, description="Texts to embed.", examples=[["a sentence to embed"]])


class EmbedResponse(BaseModel):
    model: str
    version: str | None = None
    dim: int = Field(description="Length of each vector.")
    embeddings: list[list[float]] = Field(description="One unit-length vector per text, in input order.")


class NerRequest(Request):
    model: str | None = _MODEL
    texts: list[str] = Field(min_length=1, description="Texts whose named entities to find.",
                             examples=[["Nokia opened a new plant in Oulu on Monday."]])


class Entity(BaseModel):
    type: str = Field(description="The entity type (PER, ORG, LOC...: the run's label types).")
    text: str = Field(description="The entity as it appears in the text.")
    start: int = Field(description="Character offset of its first character in the text.")
    end: int = Field(description="Character offset just past its last character.")
    score: float = Field(description="Mean probability of its words' tags.")


class NerResult(BaseModel):
    text: str = Field(description="The text the offsets index: the input, PII-masked when the service masks inputs.")
    entities: list[Entity]


class NerResponse(BaseModel):
    model: str
    version: str | None = None
    results: list[NerResult]


class QaRequest(Request):
    model: str | None = _MODEL
    questions: list[str] = Field(min_length=1, description="Questions, each answered from its context.",
                                 examples=[["Where did Nokia open a plant?"]])
    contexts: list[str] = Field(min_length=1, description="One passage per question; the answer is a span of it.",
                                examples=[["Nokia opened a new plant in Oulu on Monday."]])


class Answer(BaseModel):
    answer: str = Field(description="The answer picked from the context; empty when the model finds none (SQuAD 2.0-style runs).")
    start: int = Field(description="Character offset of the answer in its context; -1 for no answer.")
    end: int = Field(description="Character offset just past the answer; -1 for no answer.")
    score: float | None = Field(None, description="The span's start plus end logit (higher is surer).")


class QaResponse(BaseModel):
    model: str
    version: str | None = None
    results: list[Answer]


class GenerateRequest(Request):
    model: str | None = _MODEL
    prompt: str = Field(min_length=1, description="The prompt (wrapped in the chat template of chat models).",
                        examples=["Write a haiku about the sea."])
    max_new_tokens: int = Field(128, ge=1, le=32768, description="Most tokens to generate (capped by the service's limit).")
    temperature: float = Field(0.0, ge=0.0, le=100.0, description="Sampling temperature; 0 decodes greedily.")
    top_k: int | None = Field(None, ge=1, le=100000, description="Sample among the k likeliest tokens.")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Sample among the likeliest tokens making up probability p.")
    repetition_penalty: float = Field(1.0, gt=0.0, le=100.0, description="Above 1 repeats less.")
    stop: list[str] = Field(default_factory=list, max_length=16, description="Stop at any of these strings (cut from the text).")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Seed for sampling; seeded requests run unbatched.")
    system: str | None = Field(None, description="System message for chat models.")
    chat: bool | None = Field(None, description="Use the chat template; by default when the model has one.")
    stream: bool = Field(False, description="Send the text as server-sent events (data: {\"text\": ...}) as it is decoded.")

    def options(self) -> dict[str, Any]:
        """The decoding options, as :class:`lmforge.generation.GenerateConfig` keys."""
        return self.model_dump(exclude={"model", "prompt", "stream"}, exclude_none=True)


class GenerateResponse(BaseModel):
    model: str
    version: str | None = None
    text: str


class ExplainRequest(Request):
    model: str | None = _MODEL
    texts: list[str] = Field(min_length=1, description="Texts to explain.", examples=[["The service was excellent."]])
    method: Literal["ig", "occlusion"] = Field("ig", description="Classifiers: integrated gradients (ig) or occlusion.")
    target: str | None = Field(None, description="Class whose probability is explained; the predicted one when omitted.")
    steps: int = Field(50, ge=1, le=500, description="Integrated gradients' path steps.")


class WordAttribution(BaseModel):
    """One text's word attributions: positive scores support ``label``, negative ones speak against it."""

    text: str
    words: list[str]
    offsets: list[tuple[int, int]] = Field(description="(start, end) character offsets of each word in text.")
    scores: list[float]
    target: int
    label: str
    probability: float = Field(description="The model's probability of label for the text.")
    method: str
    delta: float | None = Field(None, description="Integrated gradients' completeness gap.")


class TokenLogprobs(BaseModel):
    """One text's tokens and the log-probability the language model gives each (none for the first)."""

    text: str
    tokens: list[str]
    logprobs: list[float | None]
    mean_logprob: float | None = None


class ExplainResponse(BaseModel):
    model: str
    version: str | None = None
    kind: Literal["attributions", "logprobs"] = Field(description="attributions for classifiers, logprobs for language models.")
    explanations: list[WordAttribution] | None = None
    logprobs: list[TokenLogprobs] | None = None


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    kind: str | None = None
    task: str | None = None
    operations: list[str]
    labels: list[str] | None = None
    base_model: str | None = None
    shared_base: str | None = Field(None, description="The base model this adapter shares with the other adapters on it.")
    version: str | None = None
    loaded_at: str | None = None


class ModelsResponse(BaseModel):
    default: str
    models: list[ModelInfo]


class Health(BaseModel):
    status: str
    models: int | None = None


class ErrorDetail(BaseModel):
    type: str = Field(description="unauthorized, forbidden, not_found, invalid_request, too_large, rate_limited, "
                                  "overloaded, timeout, unavailable or internal.")
    message: str
    request_id: str | None = None
    field: str | None = Field(None, description="The request field at fault (422).")


class ErrorResponse(BaseModel):
    error: ErrorDetail
