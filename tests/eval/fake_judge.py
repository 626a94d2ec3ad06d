"""A stand-in judge model behind the test server, and faults put in front of it per answer.

The judge gives 10 to an answer equal to its reference, N to an answer that says "worth N",
and 1 to any other; ``faulty`` answers the requests about some answers with scripted replies
first (one per request, in order), whatever order the requests come in.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter

from tests.llm.fake_llm import request_input
from tests.llm.server import Reply, completion


def fair_score(answer: str, reference: str) -> int:
    if answer.strip() == reference.strip():
        return 10
    worth = re.search(r"\bworth (\d+)\b", answer)
    return int(worth.group(1)) if worth else 1


def verdict(score, explanation: str = "compared with the reference") -> Reply:
    return completion(json.dumps({"explanation": explanation, "score": score}))


def fair_judge(index: int, body: dict) -> Reply:
    inp = request_input(body)
    return verdict(fair_score(inp["answer"], inp["reference"]))


def faulty(faults: dict[str, list[Reply]]):
    seen, lock = Counter(), threading.Lock()

    def respond(index: int, body: dict) -> Reply:
        answer = request_input(body)["answer"]
        with lock:
            k = seen[answer]
            seen[answer] += 1
        script = faults.get(answer, [])
        return script[k] if k < len(script) else fair_judge(index, body)

    return respond
