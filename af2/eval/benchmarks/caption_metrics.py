"""Captioning metrics as the COCO caption evaluation computes them (``pycocoevalcap``, the code
the AudioCaps and Clotho/DCASE evaluation tools wrap): CIDEr-D, SPICE and SPIDEr.

* Tokenisation: Stanford's PTB tokenizer (Java, the jar ships with pycocoevalcap), lower case,
  punctuation removed. Without Java, a Python stand-in gives the same tokens for plain
  captions (words, and clitics split off: "dog's" -> "dog 's"); ``tokenizer`` says which ran.
* CIDEr-D (``pycocoevalcap.cider``): TF-IDF n-grams 1-4, document frequencies over the
  references of the evaluated corpus, clipping and a Gaussian length penalty (sigma 6), times
  10. Pure Python.
* SPICE needs Java and the Stanford CoreNLP models, which pycocoevalcap downloads on first
  use; af2 never starts that download: without them SPICE and SPIDEr (the mean of CIDEr-D
  and SPICE) are reported as skipped, with the reason.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Optional

INSTALL = "pip install 'af2[eval]'"


class Unavailable(RuntimeError):
    """A metric that cannot run here; the message says why and what would enable it."""


def _package() -> Path:
    try:
        import pycocoevalcap
    except ImportError as err:
        raise Unavailable(f"pycocoevalcap is not installed ({INSTALL})") from err
    return Path(next(iter(pycocoevalcap.__path__)))


def simple_tokens(text: str) -> str:
    return " ".join(re.findall(r"\w+|'\w+", text.lower()))


def tokenize(captions: dict[str, list[str]]) -> tuple[dict[str, list[str]], str]:
    """Captions by id, tokenised; and the tokenizer used."""
    if shutil.which("java"):
        try:
            _package()
            from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

            tokens = PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})
            if all(len(tokens.get(k, ())) == len(v) for k, v in captions.items()):
                return tokens, "PTB (Stanford CoreNLP)"
        except (Unavailable, OSError):
            pass  # no usable Java tokenizer: the Python one below
    return {k: [simple_tokens(c) for c in v] for k, v in captions.items()}, "python (no Java)"


def cider_d(references: dict[str, list[str]], candidates: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Corpus CIDEr-D and the score of each id; captions already tokenised."""
    _package()
    from pycocoevalcap.cider.cider import Cider

    ids = list(candidates)
    corpus, each = Cider().compute_score({i: references[i] for i in ids}, {i: [candidates[i]] for i in ids})
    return float(corpus), {i: float(s) for i, s in zip(ids, each)}


def spice_unavailable() -> Optional[str]:
    """Why SPICE cannot run here, or None when it can."""
    try:
        root = _package()
    except Unavailable as err:
        return str(err)
    if not shutil.which("java"):
        return "needs Java (no 'java' on PATH)"
    if not (root / "spice" / "lib" / "stanford-corenlp-3.6.0.jar").is_file():
        return (
            "needs the Stanford CoreNLP models in pycocoevalcap/spice/lib "
            "(python -c 'from pycocoevalcap.spice.spice import Spice; Spice()' downloads them)"
        )
    return None


def spice(references: dict[str, list[str]], candidates: dict[str, str]) -> tuple[float, dict[str, float]]:
    why = spice_unavailable()
    if why:
        raise Unavailable(why)
    from pycocoevalcap.spice.spice import Spice

    ids = list(candidates)
    corpus, each = Spice().compute_score({i: references[i] for i in ids}, {i: [candidates[i]] for i in ids})
    return float(corpus), {i: float(s["All"]["f"]) for i, s in zip(sorted(ids), each)}
