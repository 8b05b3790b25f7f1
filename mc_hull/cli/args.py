"""Argument types shared by the subcommands: integers (also written 1e6) and numbers, with one-line errors."""

from __future__ import annotations

import argparse


def _int(flag):
    def parse(text: str) -> int:
        try:
            value = float(text) if any(c in text for c in ".eE") else int(text)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    return parse


def _float(flag):
    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    return parse


#: Largest seed: SeedSequence takes any non-negative integer, but a spec's seed is a signed 64-bit value.
SEED_MAX = 2**63 - 1


def _seed(flag):
    """An integer seed in [0, 2^63 - 1] (also written 1e6)."""
    as_int = _int(flag)

    def parse(text: str) -> int:
        value = as_int(text)
        if not 0 <= value <= SEED_MAX:
            raise argparse.ArgumentTypeError(f"must be an integer in [0, 2^63 - 1], got {text!r}")
        return value
    return parse


def _location(flag):
    """A results directory or URI: not empty, not ``-`` (standard output is not a directory), no NUL byte."""
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError("must name a directory or URI, got an empty string")
        if text.strip() == "-":
            raise argparse.ArgumentTypeError("must name a directory or URI, got '-' (results cannot go "
                                             "to standard output; give a directory such as ./results)")
        if "\0" in text:
            raise argparse.ArgumentTypeError("must not contain a NUL byte")
        return text
    return parse
