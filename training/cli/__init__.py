"""The trainer's verbs of the ``af2`` command line (``af2 train``, ``af2 curriculum``, ``af2 demo``).

af2's command line finds them through the ``af2.cli`` entry-point group (pyproject.toml), so
af2 never imports the trainer; each module has the shape of an ``af2/cli/<verb>.py`` module.
"""
