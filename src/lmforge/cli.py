"""``lmforge <verb>``: a table of verbs, each a thin wrapper over a recipe."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable

from lmforge import cli_pretrain
from lmforge.errors import LmforgeError


def _finetune(args: argparse.Namespace) -> int:
    from lmforge.recipes.finetune import finetune

    result = finetune(args.config, args.overrides, resume=args.resume)
    if result.predictions:
        print("\nsample predictions (held-out data):")
        for row in result.predictions:
            text = row["text"] if len(row["text"]) <= 90 else row["text"][:87] + "..."
            guess = row.get("label", row.get("labels", row.get("value")))
            print(f"  gold={row['gold']!s:<10} predicted={guess!s:<10} {text}")
    print(f"\nrun directory: {result.run_dir}  ({result.status})")
    return 0 if result.status in ("completed", "early_stopped") else 1


def _evaluate(args: argparse.Namespace) -> int:
    from lmforge.evaluation import format_table
    from lmforge.recipes.evaluate import evaluate

    perturb = [p.strip() for p in args.perturb.split(",") if p.strip()] if args.perturb else None
    metrics = evaluate(args.run, args.data, args.text_column, args.label_column, args.text_pair_column,
                       args.batch_size, args.on_bad_rows, perturb, args.perturb_rate, args.perturb_seed)
    if args.json:
        print(json.dumps(metrics, ensure_ascii=False))
    elif perturb:
        from lmforge.evaluation.perturb import robustness_table

        print(format_table(metrics["clean"]) + "\n\n" + robustness_table(metrics, _headline(metrics["clean"])))
    else:
        print(format_table(metrics))
    return 0


def _headline(metrics: dict) -> str:
    return next((m for m in ("accuracy", "micro_f1", "mse") if m in metrics), next(iter(metrics)))


def _predict(args: argparse.Namespace) -> int:
    from lmforge.recipes.predict import predict_file, predict_texts

    if args.file:
        if not args.out:
            raise LmforgeError("--file needs --out OUT.jsonl")
        n = predict_file(args.run, args.file, args.out, args.text_column, args.top_k, args.batch_size)
        print(f"wrote {n} predictions to {args.out}")
        return 0
    if not args.texts:
        raise LmforgeError("give texts to classify, or --file IN --out OUT.jsonl")
    for row in predict_texts(args.run, args.texts, args.top_k, args.batch_size):
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _prompt(args: argparse.Namespace) -> int:
    from lmforge.recipes.prompt import prompt

    result = prompt(args.config, args.overrides)
    print("\naccuracy (%), mean ± std over seeds:\n" + result.table)
    for name, path in result.artifacts.items():
        print(f"  artifact {name}: {path}")
    print(f"\nrun directory: {result.run_dir}")
    return 0


def _ensemble(args: argparse.Namespace) -> int:
    from lmforge.evaluation import format_table

    if args.runs:
        from lmforge.training.ensembles import assemble

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


def _search(args: argparse.Namespace) -> int:
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


def _zoo(args: argparse.Namespace) -> int:
    from lmforge import zoo

    if args.action == "fetch":
        for name in args.names:
            print(f"{name}: {zoo.fetch(name)}")
        return 0
    rows = zoo.list_rows()
    print(f"{'name':<18}{'kind':<9}{'cached':<8}description")
    for row in rows:
        print(f"{row['name']:<18}{row['kind']:<9}{'yes' if row['cached'] else 'no':<8}{row['description']}")
    print(f"\ncache: {zoo.home()}  (set LMFORGE_HOME to move it)")
    return 0


def _config(args: argparse.Namespace) -> int:
    from lmforge import config

    print("\n".join(config.annotated(_config_class(CONFIGS[args.recipe]))))
    return 0


def _config_class(path: str) -> type:
    import importlib

    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


# Recipe name -> its config class (imported when asked for), for `lmforge config RECIPE`.
CONFIGS: dict[str, str] = {
    "finetune": "lmforge.config:FinetuneConfig",
    "pretrain": "lmforge.pretraining.config:PretrainConfig",
    "prompt": "lmforge.prompting.config:PromptConfig",
    "ensemble": "lmforge.config:EnsembleConfig",
    "search": "lmforge.config:SearchConfig",
}


def _add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print every config key of a recipe with its default and meaning")
    p.add_argument("recipe", choices=sorted(CONFIGS))


def _merge(args: argparse.Namespace) -> int:
    from lmforge.recipes.merge import merge

    print(f"merged model saved to {merge(args.run, args.out, args.overwrite)}")
    return 0


def _add_merge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="fold a LoRA/IA3/BitFit run into its base model's weights")
    p.add_argument("run", help="adapter run directory")
    p.add_argument("--out", required=True, help="folder for the merged model (plain transformers format)")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")


def config_args(p: argparse.ArgumentParser, configs: str, example: str, resume: str | None = None,
                optional: bool = False) -> None:
    """The ``CONFIG [key.sub=value ...] [--resume]`` arguments every recipe verb takes."""
    p.add_argument("config", nargs="?" if optional else None, help=f"YAML config (see {configs})")
    p.add_argument("overrides", nargs="*", help=f"key.sub=value overrides, e.g. {example}")
    if resume:
        p.add_argument("--resume", action="store_true", help=resume)


RESUME = "continue the run from its newest checkpoint"


def _add_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a pretrained model on labeled text")
    config_args(p, "configs/", "train.lr=3e-5", RESUME)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
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


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict labels for texts or a file")
    p.add_argument("run", help="run directory")
    p.add_argument("texts", nargs="*", help="texts to classify")
    p.add_argument("--file", help="input file (CSV, TSV, JSONL, Parquet, TXT)")
    p.add_argument("--out", help="output JSONL, one prediction per input row, in input order")
    p.add_argument("--text-column", help="text column of --file")
    p.add_argument("--top-k", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)


def _add_prompt(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prompt", help="zero-shot and few-shot classifiers (prompts, in-context, PET, SetFit) compared")
    config_args(p, "configs/prompt_*.yaml", "shots.k=[16] methods=[setfit]")


def _add_ensemble(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ensemble", help="train N models (seeds or k-fold) and save them as one ensemble")
    config_args(p, "configs/ensemble.yaml", "ensemble.members=3", "reuse finished members and continue an interrupted one",
                optional=True)
    p.add_argument("--combine", choices=["mean", "vote", "soup"], help="how members are combined (overrides the config)")
    p.add_argument("--from", dest="runs", nargs="+", metavar="RUN", help="assemble already trained runs instead of training")
    p.add_argument("--out", help="ensemble folder for --from")


def _add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="hyperparameter search (Optuna TPE with pruning); rerun to resume")
    config_args(p, "configs/search.yaml", "train.epochs=2")
    p.add_argument("--space", help="YAML search space: dotted key -> {type, low, high, log} or a list of choices")
    p.add_argument("--trials", type=int, help="finished trials wanted in the study")
    p.add_argument("--jobs", type=int, help="trials at once, each in its own process (default: all cores)")


def _add_zoo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="list or fetch the named models and datasets")
    p.add_argument("action", choices=["list", "fetch"], nargs="?", default="list")
    p.add_argument("names", nargs="*", help="entries to fetch")


VERBS: dict[str, tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]]] = {
    "finetune": (_add_finetune, _finetune),
    "evaluate": (_add_evaluate, _evaluate),
    "predict": (_add_predict, _predict),
    "prompt": (_add_prompt, _prompt),
    "ensemble": (_add_ensemble, _ensemble),
    "search": (_add_search, _search),
    "zoo": (_add_zoo, _zoo),
    "config": (_add_config, _config),
    "tokenizer": (cli_pretrain.add_tokenizer, cli_pretrain.run_tokenizer),
    "pretrain": (cli_pretrain.add_pretrain, cli_pretrain.run_pretrain),
    "generate": (cli_pretrain.add_generate, cli_pretrain.run_generate),
    "merge": (_add_merge, _merge),
}


def parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per verb."""
    from lmforge import __version__

    p = argparse.ArgumentParser(prog="lmforge", description="From raw text to a deployed language model.")
    p.add_argument("--version", action="version", version=f"lmforge {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add, _ in VERBS.values():
        add(sub)
    return p


def setup_logging(quiet: bool) -> None:
    """Plain log lines on stderr; transformers' and accelerate's chatter hidden."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    root = logging.getLogger("lmforge")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("accelerate").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lmforge`` command."""
    args = parser().parse_args(argv)
    setup_logging(args.quiet)
    try:
        return VERBS[args.verb][1](args)
    except LmforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
