"""Verbs that use a saved run: ``evaluate``, ``predict``, ``generate``, ``merge``.

Recipes are imported when a verb runs, so that ``lmforge --help`` does not load torch.
"""

from __future__ import annotations

import argparse
import json

from lmforge.cli.common import headline
from lmforge.errors import LmforgeError


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """``lmforge evaluate RUN --data FILE``."""
    p = sub.add_parser("evaluate", help="metrics of a trained run on a labeled file")
    p.add_argument("run", help="run directory")
    p.add_argument("--data", required=True, help="labeled file or zoo dataset")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--text-column", help="text column, when it differs from training")
    p.add_argument("--label-column", help="label column, when it differs from training")
    p.add_argument("--text-pair-column", help="second-text column, when it differs from training")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--on-bad-rows", choices=["error", "skip"], default="error")
    p.add_argument("--perturb", help="also score perturbed copies of the data, e.g. typos,case,swap")
    p.add_argument("--perturb-rate", type=float, default=0.2, help="share of words each perturbation changes")
    p.add_argument("--perturb-seed", type=int, default=0, help="seed of the perturbed copies")


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate and print a table (or one JSON object)."""
    from lmforge.evaluation import format_table
    from lmforge.evaluation.perturb import robustness_table
    from lmforge.recipes.evaluate import evaluate

    perturb = [p.strip() for p in args.perturb.split(",") if p.strip()] if args.perturb else None
    metrics = evaluate(args.run, args.data, args.text_column, args.label_column, args.text_pair_column,
                       args.batch_size, args.on_bad_rows, perturb, args.perturb_rate, args.perturb_seed)
    if args.json:
        print(json.dumps(metrics, ensure_ascii=False))
    elif perturb:
        print(format_table(metrics["clean"]) + "\n\n" + robustness_table(metrics, headline(metrics["clean"])))
    else:
        print(format_table(metrics))
    return 0


def add_predict(sub: argparse._SubParsersAction) -> None:
    """``lmforge predict RUN TEXT...`` or ``--file IN --out OUT``."""
    p = sub.add_parser("predict", help="predict labels for texts or a file (fill-mask for a pretrained encoder, "
                                       "continuations for a language model)")
    p.add_argument("run", help="run directory")
    p.add_argument("texts", nargs="*", help="texts to classify (or to tag, for ner runs)")
    p.add_argument("--question", action="append", help="qa runs: a question (repeatable, each with its --context)")
    p.add_argument("--context", action="append", help="qa runs: the passage the answer comes from")
    p.add_argument("--file", help="input file (CSV, TSV, JSONL, Parquet, TXT; CoNLL for ner runs, SQuAD JSON or JSONL for qa runs)")
    p.add_argument("--out", help="output JSONL, one prediction per input row, in input order")
    p.add_argument("--text-column", help="text column of --file")
    p.add_argument("--top-k", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)


def run_predict(args: argparse.Namespace) -> int:
    """Predict texts (printed as JSON lines) or a file (written as JSONL)."""
    from lmforge.recipes.predict import predict_file, predict_texts

    if args.file:
        if not args.out:
            raise LmforgeError("--file needs --out OUT.jsonl")
        n = predict_file(args.run, args.file, args.out, args.text_column, args.top_k, args.batch_size)
        print(f"wrote {n} predictions to {args.out}")
        return 0
    if args.question or args.context:
        if not args.question or not args.context or len(args.question) != len(args.context):
            raise LmforgeError("give each --question with its --context (as many of one as of the other)")
        rows = predict_texts(args.run, args.question, args.top_k, args.batch_size, pairs=args.context)
    elif not args.texts:
        raise LmforgeError("give texts to classify, --question Q --context C for a qa run, or --file IN --out OUT.jsonl")
    else:
        rows = predict_texts(args.run, args.texts, args.top_k, args.batch_size)
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    return 0


def add_generate(sub: argparse._SubParsersAction) -> None:
    """``lmforge generate RUN_OR_MODEL PROMPT...``."""
    p = sub.add_parser("generate", help="generate text with a causal LM (zoo model, folder or run)")
    p.add_argument("model", help="zoo name (e.g. smollm2-135m), model folder or run directory")
    p.add_argument("prompts", nargs="*", help="prompts; tokens stream to the terminal")
    p.add_argument("--file", help="prompts file: one per line (.txt) or a column of CSV/TSV/JSONL")
    p.add_argument("--out", help="with --file: JSONL output, one {prompt, output} per prompt, in order")
    p.add_argument("--column", default="prompt", help="prompt column of --file tables")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0, help="0 decodes greedily (the default); >0 samples")
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable); cut from the output")
    p.add_argument("--seed", type=int, help="seed for sampling")
    chat = p.add_mutually_exclusive_group()
    chat.add_argument("--chat", dest="chat", action="store_const", const=True, help="always use the chat template")
    chat.add_argument("--no-chat", dest="chat", action="store_const", const=False, help="never use the chat template")
    p.add_argument("--system", help="system message for chat models")
    p.add_argument("--batch-size", type=int, default=8, help="prompts decoded together with --file")
    p.add_argument("--no-stream", action="store_true", help="print each answer when it is complete")
    guard = p.add_argument_group("guarded generation (refused prompts never reach the model)")
    guard.add_argument("--guard", help="YAML file of filters: blocklist, terms, mask_pii, max_input_chars, max_output_chars, refusal")
    guard.add_argument("--blocklist", help="file of blocked terms, one per line: prompts holding one are refused, outputs replaced")
    guard.add_argument("--mask-pii", action="store_const", const=True, help="mask e-mails, phones, IDs, cards and IPs in prompts and outputs")
    guard.add_argument("--max-input-chars", type=int, help="refuse longer prompts")
    guard.add_argument("--max-output-chars", type=int, help="cut outputs to this many characters")
    guard.add_argument("--refusal", help="the answer to a refused prompt")


def run_generate(args: argparse.Namespace) -> int:
    """Generate for the prompts or the file."""
    from lmforge import config as config_mod
    from lmforge.generation import GenerateConfig
    from lmforge.recipes.generate import generate_file, generate_prompts
    from lmforge.serving.guard import load_guard

    guard = load_guard(args.guard, {"blocklist": args.blocklist, "mask_pii": args.mask_pii, "max_input_chars": args.max_input_chars,
                                    "max_output_chars": args.max_output_chars, "refusal": args.refusal})
    options = config_mod.build(GenerateConfig, {
        "max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
        "repetition_penalty": args.repetition_penalty, "stop": args.stop, "seed": args.seed, "chat": args.chat,
        "system": args.system, "batch_size": args.batch_size}, "options")
    if args.file:
        if not args.out:
            raise LmforgeError("--file needs --out OUT.jsonl")
        n = generate_file(args.model, args.file, args.out, options, args.column, guard)
        print(json.dumps({"prompts": n, "out": args.out}))
        return 0
    if not args.prompts:
        raise LmforgeError("give a prompt, or --file PROMPTS --out OUT.jsonl")
    generate_prompts(args.model, args.prompts, options, stream=not args.no_stream, guard=guard)
    return 0


def add_merge(sub: argparse._SubParsersAction) -> None:
    """``lmforge merge RUN --out DIR``."""
    p = sub.add_parser("merge", help="fold a LoRA/IA3/BitFit run into its base model's weights")
    p.add_argument("run", help="adapter run directory")
    p.add_argument("--out", required=True, help="folder for the merged model (plain transformers format)")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")


def run_merge(args: argparse.Namespace) -> int:
    """Merge and say where the model went."""
    from lmforge.recipes.merge import merge

    print(f"merged model saved to {merge(args.run, args.out, args.overwrite)}")
    return 0
