"""Errors that mean "the input or the configuration is wrong" (exit status 2).

Library code raises these where a run cannot start or go on because of what the user gave it:
a missing or unreadable input file, a directory where a file is expected, an output path in a
missing folder, a bad setting, a server that is not there. The ``af2`` command line
(``af2.cli``) turns each into a one-line message on stderr and exit status 2, nothing written;
any other exception is a bug and keeps its traceback. Exit statuses are listed in
``af2.cli.EXIT_CODES``.

This module imports nothing, so every part of af2 (and ``training``) can raise these without
loading anything else.
"""

from __future__ import annotations

__all__ = ["InputError", "ConfigError", "ServerUnreachable"]


class InputError(Exception):
    """The input is wrong: missing, unreadable, a directory, or an output folder that does not
    exist. The message names the argument or file and says what is wrong, in one line."""


class ConfigError(InputError):
    """A setting is wrong (a bad value, an unknown key, a missing package it needs)."""


class ServerUnreachable(InputError):
    """A server the job needs is not there (connection refused, DNS or TLS failure, no such
    endpoint), so no record can succeed; finished records are kept."""
