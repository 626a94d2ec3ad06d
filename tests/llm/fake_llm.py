"""A stand-in for the model behind the test server: valid replies for the four generators.

It reads the ``<input>`` JSON of the request's first user message and answers as a
well-behaved model would; ``scripted(...)`` puts faults in front of it by request index.
"""

from __future__ import annotations

import json
import re

from tests.llm.server import Reply, completion

PREFIXES = [
    "In this short recording you can clearly hear that",
    "The audio clip captures a moment where",
    "Listening closely, one notices that",
    "What the microphone picks up here is that",
    "Throughout this brief sound clip it is evident that",
    "A listener of this clip would say that",
]
SUBSTITUTE = {
    "dog": "cat",
    "barks": "meows",
    "car": "truck",
    "bird": "frog",
    "siren": "alarm",
    "man": "woman",
    "rain": "wind",
    "bell": "horn",
}


def request_input(body: dict) -> dict:
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return json.loads(re.search(r"<input>\s*(.*?)\s*</input>", user, re.S).group(1))


def paraphrases(inp: dict) -> dict:
    caption = inp["caption"][0].lower() + inp["caption"][1:]
    return {"paraphrases": [f"{p} {caption}" for p in PREFIXES[: inp["count"]]]}


def negatives(inp: dict) -> dict:
    caption, out = inp["caption"], []
    for kind in inp["kinds"]:
        if kind == "swap_order" and " then " in caption:
            first, second = caption.split(" then ", 1)
            out.append(f"{second} then {first}")
        elif kind == "swap_attributes" and "loud" in caption and "quiet" in caption:
            out.append(caption.replace("loud", "@").replace("quiet", "loud").replace("@", "quiet"))
        elif kind == "change_count":
            out.append(f"{caption} three times")
        elif kind == "substitute_event":
            out.append(" ".join(SUBSTITUTE.get(w.lower(), w) for w in caption.split()))
        else:
            continue
        out[-1] = {"kind": kind, "text": out[-1]}
    return {"negatives": out[: inp["count"]]}


def questions(inp: dict) -> dict:
    out = []
    for k, want in enumerate(inp["questions"]):
        item = {"skill": want.get("skill", "temporal_reasoning"), "format": want["format"]}
        if "segments" in inp:
            first, last = inp["segments"][0], inp["segments"][-1]
            item.update(
                question=f"What links the {first['caption']} and the {last['caption']}?",
                answer=f"The {first['caption']} comes long before the {last['caption']}.",
                needed_segments=[first["index"], last["index"]],
            )
        else:
            item.update(question=f"Question {k} about {item['skill']}?", answer="the right one")
        if want["format"] == "multiple_choice":
            item["choices"] = [item["answer"]] + [f"wrong option {i}" for i in range(1, want["choices"])]
        out.append(item)
    return {"questions": out}


def answer(body: dict) -> dict:
    inp = request_input(body)
    if "questions" in inp:
        return questions(inp)
    return negatives(inp) if "kinds" in inp else paraphrases(inp)


def well_behaved(index: int, body: dict) -> Reply:
    return completion(json.dumps(answer(body)))


def scripted(faults: dict) -> callable:
    """Replies ``faults[index]`` (a Reply, or a callable of the body) and otherwise answers well."""

    def respond(index: int, body: dict) -> Reply:
        fault = faults.get(index)
        if fault is None:
            return well_behaved(index, body)
        return fault(body) if callable(fault) else fault

    return respond
