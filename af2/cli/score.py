"""``af2 score --input PREDS.jsonl --reference MANIFEST.jsonl [--output REPORT.json]``.

Prints accuracy per skill (multiple choice, exact and normalised match) and writes the full
report with --output. Predictions are JSONL with ``id`` and ``prediction``; a bad prediction
line is reported and not used (exit status 1); references are an af2 manifest read strictly
(a bad reference line is exit status 2).
"""

from __future__ import annotations

import argparse
import json
import logging

from af2.cli.args import add_log_level, flags, input_file, output_file

HELP = "accuracy per skill: multiple choice, exact and normalised match"
log = logging.getLogger("af2.eval")


def add_inputs(parser: argparse.ArgumentParser, *, legacy: bool) -> None:
    """--input (predictions) and --reference (the manifest) of ``score`` and ``judge``."""
    parser.add_argument(
        *flags("--input", "--pred", legacy=legacy),
        dest="pred",
        required=True,
        type=input_file,
        metavar="PREDS",
        help="predictions JSONL (id, prediction)",
    )
    parser.add_argument(
        *flags("--reference", "--ref", legacy=legacy),
        dest="ref",
        required=True,
        type=input_file,
        metavar="MANIFEST",
        help="reference af2 manifest JSONL",
    )
    add_log_level(parser)


def configure(parser: argparse.ArgumentParser, *, legacy: bool = False) -> None:
    add_inputs(parser, legacy=legacy)
    parser.add_argument(
        *flags("--output", "--out", legacy=legacy),
        dest="out",
        type=output_file,
        metavar="REPORT",
        help="write the full report (JSON) here",
    )


def load_references(path):
    """The reference manifest; a bad line is an InputError (exit status 2)."""
    from af2.data.manifest import ManifestValidationError
    from af2.errors import InputError
    from af2.eval.inputs import load_references as load

    try:
        return load(path)
    except ManifestValidationError as err:
        shown = "; ".join(str(e) for e in err.errors[:3]) + ("; ..." if len(err.errors) > 3 else "")
        raise InputError(f"--reference {path}: {len(err.errors)} bad line(s): {shown}") from None


def main(args: argparse.Namespace) -> int:
    from af2.eval.inputs import load_predictions
    from af2.eval.metrics import score
    from af2.eval.report import metrics_table
    from af2.llm.logsetup import configure_cli_logging

    configure_cli_logging(args.log_level)
    references, predictions = load_references(args.ref), load_predictions(args.pred)
    for problem in predictions.problems:
        log.warning("%s: %s (not used)", args.pred, problem)
    scores = score(references, predictions.by_id)
    print(metrics_table(scores))
    if scores.overall.missing:
        print(f"{scores.overall.missing} reference samples have no prediction (counted as wrong)")
    if scores.unmatched:
        print(f"{len(scores.unmatched)} predictions match no reference id (ignored)")
    if args.out:
        report = {
            "predictions": str(args.pred),
            "references": str(args.ref),
            "prediction_problems": predictions.problems,
            **scores.to_dict(),
        }
        args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", "utf-8")
    return 1 if predictions.problems else 0
