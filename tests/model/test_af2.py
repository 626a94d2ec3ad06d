"""AudioFlamingo2 end to end at tiny size: stages, gating, loss masking, generation, wiring."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from af2.data.collator import AF2Collator
from af2.model import AF2Config, AudioFlamingo2
from af2.stages import STAGES
from af2.text.sample import IGNORE_INDEX
from af2.text.tokens import EOC_TOKEN

from .conftest import item

M = AudioFlamingo2.batch_inputs


@pytest.mark.parametrize("stage,seconds,windows", [("pretrain", 45.0, 3), ("sft", 100.0, 9), ("long", 320.0, 30)])
def test_shapes_at_every_stage(make_model, tokenizer, stage, seconds, windows):
    model = make_model(gates=0.5)
    limit = model.config.max_windows_for(stage)
    batch = AF2Collator(tokenizer, max_windows=limit)([item(0, 4.0), item(1, seconds)])
    assert batch["audio_windows"].shape == (2, windows, 160000) and batch["truncated"].tolist() == [False, True]
    media, media_mask = model.encode_media(batch["audio_windows"], batch["audio_window_mask"])
    assert media.shape == (2, 1, windows * 64, 32) and media_mask.shape == (2, 1, windows * 64)
    assert media_mask[0, 0].sum() == 64 and media_mask[1, 0].all()
    model.train()
    model.set_stage(stage)
    out = model(**M(batch))
    assert out.logits.shape == (*batch["input_ids"].shape, model.llm.config.vocab_size)
    out.loss.backward()
    assert torch.isfinite(out.loss)


def test_truncation_is_logged_and_visible(make_model, caplog):
    model = make_model()
    with caplog.at_level(logging.WARNING):
        win = model.window_audio([torch.zeros(16000 * 45), torch.zeros(16000 * 5)], stage="pretrain")
    assert win.windows.shape == (2, 3, 160000)
    assert win.truncated.tolist() == [True, False]
    assert win.mask.tolist() == [[True, True, True], [True, False, False]]
    assert "dropping 15.0 s" in caplog.text


def test_zero_gates_give_the_bare_llm(make_model, batch):
    model = make_model(gates=0.0)
    mask = batch["attention_mask"]
    assert not mask.all()  # right padding in the batch
    with torch.no_grad():
        ours = model(**M(batch)).logits
        bare = model.llm(input_ids=batch["input_ids"], attention_mask=mask.long()).logits
        # forward counts positions over real tokens only (left padding safe); same ids -> same logits
        same_pos = model.llm(
            input_ids=batch["input_ids"],
            attention_mask=mask.long(),
            position_ids=(mask.long().cumsum(-1) - 1).clamp_min(0),
        ).logits
    assert torch.equal(ours, same_pos)
    assert torch.equal(ours[mask], bare[mask])


def test_audio_reaches_the_logits_and_padding_does_not(make_model, batch):
    model = make_model(gates=0.5)
    with torch.no_grad():
        base = model(**M(batch)).logits
        other = dict(M(batch), audio_windows=batch["audio_windows"].flip(0))
        assert not torch.allclose(model(**other).logits, base, atol=1e-4)
        padded = dict(M(batch), audio_windows=batch["audio_windows"].clone())
        padded["audio_windows"][0, 1] = 3.0  # sample 0's padded window
        torch.testing.assert_close(model(**padded).logits, base)


def test_dense_features_path_equals_audio_path(make_model, batch):
    model = make_model(gates=0.5)
    with torch.no_grad():
        dense = model.clap.dense_features(batch["audio_windows"], batch["audio_window_mask"])
        a = model(**M(batch)).logits
        b = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            dense_features=dense,
            audio_window_mask=batch["audio_window_mask"],
        ).logits
    torch.testing.assert_close(a, b)


def test_loss_only_on_answer_tokens(make_model, tokenizer, batch):
    model = make_model(gates=0.5)
    labels = batch["labels"]
    for row in range(2):  # the collator supervises answer + eoc + eos
        supervised = labels[row][labels[row] != IGNORE_INDEX]
        answer = ["3 beeps", "piano"][row]
        assert tokenizer.decode(supervised) == f"{answer}{EOC_TOKEN}{tokenizer.eos_token}"
    out = model(**M(batch))
    logp = out.logits[:, :-1].float().log_softmax(-1)
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX
    manual = -logp[keep].gather(1, target[keep][:, None]).mean()
    torch.testing.assert_close(out.loss, manual)
    # Gradient w.r.t. the logits is zero wherever the next token is not supervised.
    logits = out.logits.detach().requires_grad_()
    from af2.model import causal_lm_loss

    causal_lm_loss(logits, labels).backward()
    grad_rows = logits.grad[:, :-1].abs().sum(-1) > 0
    assert torch.equal(grad_rows, keep)


def _greedy_by_hand(model, ids, mask, windows, window_mask, steps):
    """Full forward passes (no KV cache, no cached media), argmax with `<audio>` banned, stop on
    eoc/eos. (The HTSAT output is computed once: it does not depend on the text.)"""
    t = model.config.token_ids
    dense = model.clap.dense_features(windows, window_mask) if windows is not None else None
    done = torch.zeros(ids.shape[0], dtype=torch.bool)
    new = []
    for _ in range(steps):
        logits = model(input_ids=ids, attention_mask=mask, dense_features=dense, audio_window_mask=window_mask).logits[
            :, -1
        ]
        logits[:, t["audio"]] = float("-inf")
        token = torch.where(done, torch.full_like(done, t["pad"], dtype=torch.long), logits.argmax(-1))
        new.append(token)
        done |= (token == t["eoc"]) | (token == t["eos"])
        if done.all():
            break
        ids = torch.cat([ids, token[:, None]], 1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    return torch.stack(new, 1)


def test_generate_equals_manual_greedy_loop(make_model, tokenizer):
    model = make_model(gates=0.7, seed=3)
    with torch.no_grad():  # larger LLM weights, so greedy decoding does not just repeat a token
        for p in model.llm.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    waves = [item(0, 4.0).wave, item(1, 23.0).wave]
    prompts = ["How many beeps?", "Which instrument plays the note A4?"]  # different lengths: left padding
    win = model.window_audio(waves, max_windows=3)
    ids, mask = model.encode_prompts(prompts)
    assert not mask[0].all() and mask[1].all()
    calls = {"htsat": 0, "audio_transformer": 0, "to_kv": 0, "llm": 0}

    def count(name):
        return lambda *a: calls.__setitem__(name, calls[name] + 1)

    handles = [
        model.clap.audio.register_forward_hook(count("htsat")),
        model.audio_transformer.register_forward_hook(count("audio_transformer")),
        model.llm.register_forward_hook(count("llm")),
        *[b.attn.to_kv.register_forward_hook(count("to_kv")) for b in model.xattn.values()],
    ]
    with torch.no_grad():
        got = model.generate(waves, prompts, max_new_tokens=8, return_ids=True)
    for h in handles:
        h.remove()
    assert calls["htsat"] == 1 and calls["audio_transformer"] == 1  # the audio path ran once
    assert calls["to_kv"] == len(model.xattn)  # media k/v computed once per block
    assert calls["llm"] == got.shape[1]  # prefill + one call per new token
    with torch.no_grad():
        expect = _greedy_by_hand(model, ids, mask, win.windows, win.mask, 8)
    assert torch.equal(got, expect)
    assert got.shape == (2, 8) and len(set(got[0].tolist())) > 3  # a non-trivial continuation
    assert all(b._cache is None for b in model.xattn.values())
    text = model.generate(waves, prompts, max_new_tokens=8)
    assert text == tokenizer.batch_decode(got, skip_special_tokens=True)


def test_generate_text_only(make_model, tokenizer):
    model = make_model(gates=0.7, seed=3)
    with torch.no_grad():
        for p in model.llm.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    prompts = ["Say something.", "What is the tempo of a march?"]
    calls = []
    handles = [
        model.clap.audio.register_forward_hook(lambda *a: calls.append("htsat")),
        *[b.register_forward_hook(lambda *a: calls.append("xattn")) for b in model.xattn.values()],
    ]
    got = model.generate(prompts=prompts, max_new_tokens=6, return_ids=True)
    for h in handles:
        h.remove()
    assert calls == []  # no audio path, no xattn block
    ids, mask = model.encode_prompts(prompts, audio=False)
    assert (ids != model.config.token_ids["audio"]).all()
    with torch.no_grad():
        assert torch.equal(got, _greedy_by_hand(model, ids, mask, None, None, 6))
    assert model.generate(prompts=prompts, max_new_tokens=6) == tokenizer.batch_decode(got, skip_special_tokens=True)


def test_encode_examples_masks_the_prompt(make_model, tokenizer, batch):
    model = make_model(gates=0.3)
    prompts, answers = ["How many beeps?", "Which instrument plays?"], ["3 beeps", "piano"]
    enc = model.encode_examples(prompts, answers)
    for key in ("input_ids", "attention_mask", "labels"):  # the collator's tokens exactly
        assert torch.equal(enc[key], batch[key]), key
    for row, answer in enumerate(answers):
        supervised = enc["labels"][row][enc["labels"][row] != IGNORE_INDEX]
        assert tokenizer.decode(supervised, skip_special_tokens=True) == answer
    with pytest.raises(ValueError, match="2 prompts for 1 answers"):
        model.encode_examples(prompts, answers[:1])


def test_generate_sampling_is_seeded(make_model):
    model = make_model(gates=0.5)
    waves = [item(0, 2.0).wave]
    kw = dict(max_new_tokens=6, do_sample=True, temperature=1.5, top_k=50, top_p=0.9, return_ids=True)
    a = model.generate(waves, "Count", generator=torch.Generator().manual_seed(1), **kw)
    b = model.generate(waves, "Count", generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(a, b) and (a != model.config.token_ids["audio"]).all()
    with pytest.raises(ValueError, match="2 audio inputs for 1 prompts"):
        model.generate([waves[0], waves[0]], ["one prompt"])


def test_trainable_parameter_sets(make_model):
    model = make_model()
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    at, xattn = ids(model.audio_transformer.parameters()), ids(model.xattn.parameters())
    embed, htsat = ids(model.llm.get_input_embeddings().parameters()), ids(model.clap.audio.parameters())
    clap_all = (
        htsat
        | ids(model.clap.audio_projection.parameters())
        | ids(model.clap.text.parameters())
        | ids(model.clap.text_projection.parameters())
        | {id(model.clap.logit_scale)}
    )
    assert ids(model.trainable_parameters("pretrain")) == at | xattn | embed
    assert ids(model.trainable_parameters("long")) == at | xattn | embed
    assert ids(model.trainable_parameters("sft")) == at | xattn | embed | htsat
    assert ids(model.trainable_parameters("clap")) == clap_all
    for stage in STAGES:
        ps = model.trainable_parameters(stage)
        assert len(ps) == len(ids(ps))  # each parameter once
    with pytest.raises(ValueError, match="unknown stage"):
        model.trainable_parameters("stage1")


def test_set_stage_freezes_the_rest(make_model, batch):
    model = make_model(gates=0.5).train()
    trainable = {id(p) for p in model.set_stage("pretrain")}
    model(**M(batch)).loss.backward()
    for name, p in model.named_parameters():
        has_grad = p.grad is not None
        assert has_grad == (id(p) in trainable and not name.startswith("clap.")), name


def test_activation_checkpointing_gives_the_same_gradients(make_model, batch):
    model = make_model(gates=0.5).train()
    model.set_stage("sft")
    model(**M(batch)).loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    if hasattr(model.llm, "activation_checkpointing_enable"):  # transformers >= 5.x
        model.llm.activation_checkpointing_enable()
    else:
        model.llm.gradient_checkpointing_enable()
    calls = []
    model.xattn["0"].attn.norm.register_forward_hook(lambda *a: calls.append(1))
    model(**M(batch)).loss.backward()
    assert len(calls) == 2  # the recomputation in backward ran the block again, with media
    assert {n for n, p in model.named_parameters() if p.grad is not None} == set(plain)
    for n, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, plain[n], rtol=1e-5, atol=1e-6, msg=n)


def test_deepcopy_keeps_its_own_blocks(make_model, batch):
    model = make_model(gates=0.5)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for block in twin.xattn.values():
            block.attn_gate.zero_()
            block.ff_gate.zero_()
        mask = batch["attention_mask"]
        assert torch.equal(
            twin(**M(batch)).logits[mask],
            twin.llm(input_ids=batch["input_ids"], attention_mask=mask.long()).logits[mask],
        )
        assert not torch.allclose(model(**M(batch)).logits, twin(**M(batch)).logits, atol=1e-4)


def test_xattn_every_n_layers(make_model, batch):
    from af2.model.config import XattnConfig

    model = make_model(gates=0.5, xattn=XattnConfig(every_n_layers=2, heads=2, dim_head=16))
    assert list(model.xattn.keys()) == ["1"]
    assert model(**M(batch)).logits.isfinite().all()


def test_llm_loads_from_a_local_directory(tmp_path, tokenizer, make_model):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(5)
    base = AF2Config.preset("tiny").llm
    qwen = Qwen2ForCausalLM(Qwen2Config(**base))
    qwen.save_pretrained(tmp_path / "qwen")
    tokenizer.save_pretrained(tmp_path / "tok")
    model = AudioFlamingo2(
        AF2Config.preset("tiny", llm_path=str(tmp_path / "qwen"), tokenizer=None, tokenizer_path=str(tmp_path / "tok"))
    )
    n = len(model.tokenizer)
    assert n == len(tokenizer)  # AF2's tokens (official order) are already there
    assert "<|PAD_TOKEN|>" in model.tokenizer.get_vocab()
    assert model.llm.config.vocab_size == n == model.config.text_config.vocab_size
    theirs, ours = qwen.state_dict(), model.llm.state_dict()
    assert set(theirs) == set(ours)  # the LLM's keys are untouched by the wiring
    for key, value in theirs.items():
        if "embed_tokens" in key or "lm_head" in key:
            torch.testing.assert_close(ours[key][: len(tokenizer)], value[: len(tokenizer)])
        else:
            assert torch.equal(ours[key], value), key
    model.save_pretrained(tmp_path / "af2")  # the saved config no longer needs llm_path
    again = AudioFlamingo2.from_pretrained(tmp_path / "af2")
    assert again.config.llm_path is None and again.llm.config.vocab_size == n
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_af2_token_order_matches_the_release():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from af2.text.tokens import add_special_tokens, special_token_ids

    vocab = {f"t{i}": i for i in range(10)}
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")), eos_token="t1", pad_token="t1"
    )  # Qwen2.5: pad = eos = <|endoftext|>
    assert add_special_tokens(tok) == 4
    ids = special_token_ids(tok)
    assert (ids["audio"], ids["eoc"], tok.convert_tokens_to_ids("<|PAD_TOKEN|>"), ids["sep"]) == (10, 11, 12, 13)
    assert ids["pad"] == ids["eos"] == 1


def test_fused_and_eager_twins_agree(make_model, batch):
    model = make_model(gates=0.5).train()
    model.set_stage("pretrain")
    grads = []
    for fused in (True, False):
        model.use_fused_ops(fused)
        model.zero_grad()
        out = model(**M(batch))
        out.loss.backward()
        grads.append((out.logits.detach(), [p.grad.clone() for p in model.trainable_parameters("pretrain")]))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bfloat16_model_runs(make_model, batch):
    model = make_model(gates=0.5).to(torch.bfloat16).train()
    model.set_stage("pretrain")
    out = model(**M(batch))
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.xattn["0"].attn.to_kv.weight.grad.dtype == torch.bfloat16


def test_sampling_with_top_k_1_is_greedy(make_model):
    model = make_model(gates=0.5)
    waves = [item(0, 2.0).wave, item(1, 3.0).wave]
    greedy = model.generate(waves, ["Count", "Which one?"], max_new_tokens=5, return_ids=True)
    top1 = model.generate(
        waves,
        ["Count", "Which one?"],
        max_new_tokens=5,
        return_ids=True,
        do_sample=True,
        temperature=0.7,
        top_k=1,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(greedy, top1)


def test_frozen_htsat_stays_in_eval_mode(make_model, batch):
    model = make_model(gates=0.5)
    model.set_stage("pretrain")
    model.train()
    assert model.training and model.audio_transformer.training and not model.clap.audio.training
    stats = model.clap.audio.audio_encoder.batch_norm.running_mean.clone()
    model(**M(batch)).loss.backward()
    assert torch.equal(model.clap.audio.audio_encoder.batch_norm.running_mean, stats)
    model.set_stage("sft")
    assert model.train().clap.audio.training


def test_tiny_tokenizer_prints_nothing(capfd):
    from af2.text.tokens import tiny_tokenizer

    capfd.readouterr()
    tiny_tokenizer()  # the BPE trainer's progress output would land in trainer logs
    out = capfd.readouterr()
    assert out.out == "" and out.err == ""
