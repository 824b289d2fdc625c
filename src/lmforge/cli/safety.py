"""Verbs that look inside a run: ``explain`` (word attributions, token log-probabilities) and ``audit`` (bias, calibration).

Recipes are imported when a verb runs, so that ``lmforge --help`` does not load torch.
"""

from __future__ import annotations

import argparse
import json

from lmforge.errors import LmforgeError


def add_explain(sub: argparse._SubParsersAction) -> None:
    """``lmforge explain RUN TEXT... [--method ig|occlusion] [--html FILE]`` or ``--data FILE --top N``."""
    p = sub.add_parser("explain", help="which words made a classifier decide (or how likely a language model finds each token)")
    p.add_argument("run", help="run directory, model folder or zoo name")
    p.add_argument("texts", nargs="*", help="texts to explain")
    p.add_argument("--method", choices=["ig", "occlusion"], help="integrated gradients (default for one text) or occlusion "
                                                                 "(default for --data: fast and black-box)")
    p.add_argument("--target", help="class to explain (default: the predicted one)")
    p.add_argument("--steps", type=int, default=50, help="integrated gradients' path steps")
    p.add_argument("--html", help="also write the texts, highlighted, to this HTML file")
    p.add_argument("--top", type=int, help="table: only the N strongest words; with --data: N words per class")
    p.add_argument("--data", help="global view: the most influential words per class over a sample of this file")
    p.add_argument("--sample", type=int, default=200, help="texts of --data explained (seeded sample)")
    p.add_argument("--text-column", help="text column of --data")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run_explain(args: argparse.Namespace) -> int:
    """Explain texts (tables or JSON lines) or a file's sample (words per class)."""
    from lmforge.evaluation.explain import to_table
    from lmforge.evaluation.explainer import logprob_table
    from lmforge.recipes.explain import explain_global, explain_texts

    if args.data:
        result = explain_global(args.run, args.data, args.top or 10, args.method or "occlusion", args.sample, args.text_column)
        print(json.dumps(result, ensure_ascii=False) if args.json else global_table(result))
        return 0
    if not args.texts:
        raise LmforgeError("give texts to explain, or --data FILE --top N for the most influential words per class")
    rows = explain_texts(args.run, args.texts, args.method or "ig", args.target, args.steps, args.html)
    for row in rows:
        if args.json:
            print(json.dumps(row.to_dict(), ensure_ascii=False))
        else:
            print((logprob_table(row) if hasattr(row, "tokens") else to_table(row, args.top)) + "\n")
    if args.html:
        print(f"wrote {args.html}")
    return 0


def global_table(result: dict) -> str:
    """The words per class of :func:`lmforge.recipes.explain.explain_global` as plain-text columns."""
    lines = [f"most influential words ({result['method']}, {result['num_texts']} texts)"]
    for label, view in result["classes"].items():
        lines.append(f"\n{label} ({view['num_texts']} texts predicted)")
        for side in ("for", "against"):
            cells = ", ".join(f"{r['word']} {r['mean']:+.3f} ({r['count']})" for r in view[side]) or "-"
            lines.append(f"  {side:<8} {cells}")
    return "\n".join(lines)


def add_audit(sub: argparse._SubParsersAction) -> None:
    """``lmforge audit RUN --data FILE [--out DIR]``."""
    p = sub.add_parser("audit", help="bias probe (counterfactual swaps), calibration and robustness of a classifier")
    p.add_argument("run", help="run directory, model folder or zoo name")
    p.add_argument("--data", required=True, help="texts to audit (with labels for calibration)")
    p.add_argument("--out", help="folder for audit.md, audit.json and reliability.png")
    p.add_argument("--language", choices=["auto", "en", "zh"], default="auto", help="swap lists to use")
    p.add_argument("--sample", type=int, help="audit a seeded sample of this many texts")
    p.add_argument("--text-column", help="text column, when it differs from training")
    p.add_argument("--label-column", help="label column, when it differs from training")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object instead of Markdown")


def run_audit(args: argparse.Namespace) -> int:
    """Audit and print the Markdown report (or JSON)."""
    from lmforge.evaluation.audit import audit_markdown
    from lmforge.recipes.explain import audit_run

    result = audit_run(args.run, args.data, args.out, args.text_column, args.label_column, args.language, args.sample)
    print(json.dumps(result, ensure_ascii=False) if args.json else audit_markdown(result))
    if args.out:
        print(f"wrote {args.out}/audit.md, audit.json" + (", reliability.png" if (result.get("calibration") or {}).get("plot") else ""))
    return 0
