"""Verbs that train: ``finetune``, ``pretrain``, ``prompt``, ``ensemble``, ``search``, ``tokenizer``.

Recipes are imported when a verb runs, so that ``lmforge --help`` does not load torch.
"""

from __future__ import annotations

import argparse

from lmforge.cli.common import RESUME, config_args
from lmforge.errors import LmforgeError


def add_finetune(sub: argparse._SubParsersAction) -> None:
    """``lmforge finetune CONFIG [k=v ...] [--resume]``."""
    p = sub.add_parser("finetune", help="fine-tune a pretrained model on labeled text")
    config_args(p, "configs/", "train.lr=3e-5", RESUME)


def run_finetune(args: argparse.Namespace) -> int:
    """Fine-tune and print a few held-out predictions."""
    from lmforge.recipes.finetune import finetune

    result = finetune(args.config, args.overrides, resume=args.resume)
    if result.predictions:
        print("\nsample predictions (held-out data):")
        for row in result.predictions:
            gold, guess, text = _shown(row)
            text = text if len(text) <= 90 else text[:87] + "..."
            print(f"  gold={gold!s:<10} predicted={guess!s:<10} {text}")
    print(f"\nrun directory: {result.run_dir}  ({result.status})")
    return 0 if result.status in ("completed", "early_stopped") else 1


def _shown(row: dict) -> tuple[object, object, str]:
    """(gold, predicted, text) of a sample prediction: a label, an answer (qa) or entities as text/TYPE (ner)."""
    text = str(row.get("text", row.get("question", "")))
    if "entities" in row:
        spans = lambda items: " ".join(f"{text[e['start']:e['end']]}/{e['type']}" for e in items) or "-"  # noqa: E731
        return spans(row.get("gold") or []), spans(row["entities"]), text
    guess = row.get("label", row.get("labels", row.get("value", row.get("answer"))))
    return row.get("gold"), guess, text


def add_pretrain(sub: argparse._SubParsersAction) -> None:
    """``lmforge pretrain CONFIG [k=v ...] [--resume]``."""
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


def add_prompt(sub: argparse._SubParsersAction) -> None:
    """``lmforge prompt CONFIG [k=v ...]``."""
    p = sub.add_parser("prompt", help="zero-shot and few-shot classifiers (prompts, in-context, PET, SetFit) compared")
    config_args(p, "configs/prompt_*.yaml", "shots.k=[16] methods=[setfit]")


def run_prompt(args: argparse.Namespace) -> int:
    """Run the k-shot protocol and print the table."""
    from lmforge.recipes.prompt import prompt

    result = prompt(args.config, args.overrides)
    print("\naccuracy (%), mean ± std over seeds:\n" + result.table)
    for name, path in result.artifacts.items():
        print(f"  artifact {name}: {path}")
    print(f"\nrun directory: {result.run_dir}")
    return 0


def add_ensemble(sub: argparse._SubParsersAction) -> None:
    """``lmforge ensemble CONFIG`` or ``lmforge ensemble --from RUN ... --out DIR``."""
    p = sub.add_parser("ensemble", help="train N models (seeds or k-fold) and save them as one ensemble")
    config_args(p, "configs/ensemble.yaml", "ensemble.members=3", "reuse finished members and continue an interrupted one",
                optional=True)
    p.add_argument("--combine", choices=["mean", "vote", "soup"], help="how members are combined (overrides the config)")
    p.add_argument("--from", dest="runs", nargs="+", metavar="RUN", help="assemble already trained runs instead of training")
    p.add_argument("--out", help="ensemble folder for --from")


def run_ensemble(args: argparse.Namespace) -> int:
    """Assemble trained runs, or train and assemble the members of a config."""
    from lmforge.evaluation import format_table

    if args.runs:
        from lmforge.artifacts import assemble

        if not args.out:
            raise LmforgeError("--from RUN ... needs --out DIR for the ensemble")
        print(f"ensemble saved to {assemble(args.runs, args.out, args.combine or 'mean')}")
        return 0
    if not args.config:
        raise LmforgeError("give an ensemble config (see configs/ensemble.yaml), or --from RUN ... --out DIR")
    from lmforge.recipes.ensemble import ensemble

    overrides = list(args.overrides) + ([f"ensemble.combine={args.combine}"] if args.combine else [])
    result = ensemble(args.config, overrides, resume=args.resume)
    for split, metrics in result["ensemble"].items():
        print(f"\nensemble on {split}:\n{format_table(metrics)}")
    print(f"\nrun directory: {result['run_dir']}  (report: {result['run_dir']}/report.md)")
    return 0


def add_search(sub: argparse._SubParsersAction) -> None:
    """``lmforge search CONFIG --space S --trials N``."""
    p = sub.add_parser("search", help="hyperparameter search (Optuna TPE with pruning); rerun to resume")
    config_args(p, "configs/search.yaml", "train.epochs=2")
    p.add_argument("--space", help="YAML search space: dotted key -> {type, low, high, log} or a list of choices")
    p.add_argument("--trials", type=int, help="finished trials wanted in the study")
    p.add_argument("--jobs", type=int, help="trials at once, each in its own process (default: all cores)")


def run_search(args: argparse.Namespace) -> int:
    """Search and print the trials and the best config."""
    from lmforge.recipes.search import format_rows, search

    result = search(args.config, args.space, args.trials, args.overrides, args.jobs)
    print(format_rows(result.rows, result.metric))
    if result.best_value is None:
        print(f"\nno trial finished; see {result.run_dir / 'trials'}")
        return 1
    print(f"\nbest: {result.metric}={result.best_value:.4f} with {result.best_params}")
    print(f"best config: {result.run_dir / 'best.yaml'}  (lmforge finetune {result.run_dir / 'best.yaml'})")
    print(f"table: {result.run_dir / 'trials.csv'}  plot: {result.run_dir / 'plots' / 'search.png'}")
    return 0


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
