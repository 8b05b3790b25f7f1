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
