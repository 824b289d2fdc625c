"""Command-line verbs of pretraining and generation: ``tokenizer``, ``pretrain``, ``generate``."""

from __future__ import annotations

import argparse
import json

from lmforge.errors import LmforgeError


def add_tokenizer(sub: argparse._SubParsersAction) -> None:
    """``lmforge tokenizer train``."""
    p = sub.add_parser("tokenizer", help="train a tokenizer (WordPiece, byte-level BPE, Unigram) on a corpus")
    p.add_argument("action", choices=["train"])
    p.add_argument("--files", nargs="+", required=True, help="text files, folders, tables or zoo corpora")
    p.add_argument("--type", dest="kind", choices=["wordpiece", "bpe", "unigram"], default="wordpiece",
                   help="wordpiece: BERT (Chinese one character per token); bpe: byte-level, GPT-style; "
                        "unigram: SentencePiece-style")
    p.add_argument("--vocab-size", type=int, default=30000)
    p.add_argument("--out", required=True, help="folder to write; AutoTokenizer.from_pretrained(OUT) loads it")
    p.add_argument("--min-frequency", type=int, default=2, help="pairs seen fewer times are not merged")
    p.add_argument("--lowercase", action="store_true", help="lowercase inside the tokenizer (and strip accents for WordPiece)")
    p.add_argument("--normalize", choices=["nfkc", "nfc", "none"], default="nfkc",
                   help="Unicode normalization inside the tokenizer")
    p.add_argument("--documents", choices=["line", "blank_line"], default="line", help="document boundaries in text files")
    p.add_argument("--text-column", nargs="+", default=["text"],
                   help="text column of CSV/TSV/JSONL/Parquet files (several names: tried in turn)")
    p.add_argument("--max-length", type=int, default=512, help="model_max_length recorded in the tokenizer")


def run_tokenizer(args: argparse.Namespace) -> int:
    """Train and save the tokenizer (its size and folder are logged)."""
    from lmforge.data.tokenizer_training import train_tokenizer

    train_tokenizer(args.files, args.out, args.kind, args.vocab_size, args.min_frequency, args.lowercase, args.normalize,
                    args.documents, args.text_column, args.max_length)
    return 0


def add_pretrain(sub: argparse._SubParsersAction) -> None:
    """``lmforge pretrain CONFIG [key=value ...]``."""
    from lmforge.cli import RESUME, config_args

    p = sub.add_parser("pretrain", help="pretrain (or continue pretraining) a model on unlabeled text: MLM, NSP, causal LM")
    config_args(p, "configs/pretrain_*.yaml", "train.max_steps=1000", RESUME)


def run_pretrain(args: argparse.Namespace) -> int:
    """Run the pretraining recipe."""
    from lmforge.recipes.pretrain import pretrain

    result = pretrain(args.config, args.overrides, resume=args.resume)
    if result.metrics:
        print("\nheld-out: " + ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()))
    print(f"\nrun directory: {result.run_dir}  ({result.status}); fine-tune it with model.name={result.run_dir}")
    return 0 if result.status in ("completed", "early_stopped") else 1


def add_generate(sub: argparse._SubParsersAction) -> None:
    """``lmforge generate RUN_OR_MODEL PROMPT``."""
    p = sub.add_parser("generate", help="generate text with a causal LM (zoo model, folder or pretraining run)")
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


def run_generate(args: argparse.Namespace) -> int:
    """Generate for the prompts or the file."""
    from lmforge import config as config_mod
    from lmforge.generation import GenerateConfig
    from lmforge.recipes.generate import generate_file, generate_prompts

    options = config_mod.build(GenerateConfig, {
        "max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
        "repetition_penalty": args.repetition_penalty, "stop": args.stop, "seed": args.seed, "chat": args.chat,
        "system": args.system, "batch_size": args.batch_size}, "options")
    if args.file:
        if not args.out:
            raise LmforgeError("--file needs --out OUT.jsonl")
        n = generate_file(args.model, args.file, args.out, options, args.column)
        print(json.dumps({"prompts": n, "out": args.out}))
        return 0
    if not args.prompts:
        raise LmforgeError("give a prompt, or --file PROMPTS --out OUT.jsonl")
    generate_prompts(args.model, args.prompts, options, stream=not args.no_stream)
    return 0
