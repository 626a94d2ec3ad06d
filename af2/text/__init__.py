"""AF2's text side, shared by the model and the data pipeline (pure Python, no extra needed).

Modules: :mod:`~af2.text.tokens` (the special tokens, adding them to a tokenizer in the release's
order, their ids, the tiny offline tokenizer), :mod:`~af2.text.sample` (the sample format
``<audio>{prompt}<SEP>{answer}<|endofchunk|>{eos}`` as token ids and labels) and
:mod:`~af2.text.prompts` (a multiple-choice prompt's option block).
"""
