"""Rule-based hard negatives: each kind, distinctness, determinism, honest shortfalls."""

from __future__ import annotations

import pytest

from af2.data.negatives import KINDS, Negative, NegativesResult, make_negatives


def _texts(caption, kind, n=50, **kw):
    return {x.text for x in make_negatives(caption, n, kinds=[kind], **kw).negatives}


def test_swap_order_examples():
    assert _texts("a dog barks, then a car passes", "swap_order") == {"a car passes, then a dog barks"}
    assert _texts("A dog barks, then a car passes.", "swap_order") == {"A car passes, then a dog barks."}
    assert _texts("a siren wails before a door slams", "swap_order") == {"a door slams before a siren wails"}
    three = _texts("a bell rings, then a man speaks, followed by a door closing", "swap_order")
    assert len(three) == 5 and "a door closing, then a man speaks, followed by a bell rings" in three
    # Simultaneous events have no order to swap.
    assert make_negatives("a dog barks while a car passes", 3, kinds=["swap_order"]).negatives == []


def test_swap_attributes_examples():
    assert _texts("a loud dog barks while a quiet bird sings", "swap_attributes") == {
        "a quiet dog barks while a loud bird sings"
    }
    assert _texts("an old man coughs, then a young girl sings", "swap_attributes") == {
        "a young man coughs, then an old girl sings"
    }
    assert _texts("a man speaks slowly and a woman answers quickly", "swap_attributes") == {
        "a man speaks quickly and a woman answers slowly"
    }
    assert _texts("a loud, sharp bang", "swap_attributes") == set()  # one event: nothing to exchange


def test_change_count_examples():
    got = _texts("a bell rings three times", "change_count")
    assert got == {"a bell rings four times", "a bell rings twice", "a bell rings five times", "a bell rings once"}
    assert _texts("a doorbell rings twice", "change_count") >= {"a doorbell rings once", "a doorbell rings three times"}
    assert _texts("3 beeps, then silence", "change_count") == {
        "4 beeps, then silence",
        "2 beeps, then silence",
        "5 beeps, then silence",
    }
    assert _texts("Two dogs bark", "change_count") == {"Three dogs bark", "Four dogs bark"}


def test_substitute_event_examples():
    got = _texts("a dog barks", "substitute_event")
    assert {"a wolf barks", "a fox barks", "a dog howls", "a dog growls"} <= got
    assert "an alarm rings" in _texts("a bell rings", "substitute_event")  # article follows the new word
    assert "two wolves howl" in _texts("two dogs howl", "substitute_event")


def test_contract_distinct_not_caption_at_most_n_deterministic():
    caption = "A loud dog barks three times, then a quiet car passes."
    for n in (0, 1, 4, 10):
        res = make_negatives(caption, n, seed=3)
        assert isinstance(res, NegativesResult) and res.caption == caption
        texts = [x.text for x in res.negatives]
        assert len(texts) == n == len(set(texts)) and caption not in texts and res.reasons == []
        assert all(isinstance(x, Negative) and x.kind in KINDS for x in res.negatives)
    assert make_negatives(caption, 6, seed=3) == make_negatives(caption, 6, seed=3)
    assert make_negatives(caption, 6, seed=3).negatives != make_negatives(caption, 6, seed=4).negatives
    # Round-robin: with enough candidates every kind is represented.
    assert {x.kind for x in make_negatives(caption, 8, seed=0).negatives} == set(KINDS)


def test_fewer_than_n_with_reasons_never_padded():
    res = make_negatives("Silence.", 5)
    assert res.negatives == [] and len(res.reasons) == 5
    assert any("swap_order" in r for r in res.reasons) and any("only 0 distinct" in r for r in res.reasons)
    res = make_negatives("a dog barks, then a car passes", 100, kinds=["swap_order", "change_count"])
    assert [x.text for x in res.negatives] == ["a car passes, then a dog barks"]
    assert any("change_count: no explicit count" in r for r in res.reasons)
    assert any("only 1 distinct negative(s)" in r and "n=100" in r for r in res.reasons)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown kind"):
        make_negatives("a dog barks", 2, kinds=["paraphrase"])
    with pytest.raises(ValueError, match="n must be"):
        make_negatives("a dog barks", -1)
