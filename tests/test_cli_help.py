"""The CLI explains itself: every flag has help with its choices, JSON formats parse, empty and unknown inputs exit 2."""

from __future__ import annotations

import argparse
import json

import pytest

from mc_hull.cli import build_parser, main
from mc_hull.samplers import sampler_names
from mc_hull.solvers import solver_names

COMMANDS = ("run", "query", "plot", "hull-test", "submit", "status", "logs", "stop", "dashboard")


def subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]


def help_text(name: str) -> str:
    return subparser(name).format_help()


@pytest.mark.parametrize("name", COMMANDS)
def test_every_flag_has_help_and_no_literal_percent(name):
    p = subparser(name)
    assert p.description
    for action in p._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and len(action.help) > 8, (name, action.option_strings or action.dest)
    text = help_text(name)
    assert "%%" not in text and "%(" not in text
    assert "99%" in text or name not in ("query", "hull-test")


def test_run_help_lists_distributions_solvers_and_explains_seed_tol_progress():
    text = " ".join(help_text("run").split())
    for name in sampler_names():
        assert name in text, name
    for name in solver_names():
        assert name in text, name
    assert "subspace (k=2)" in text and "student-t (df=3)" in text  # parameters with defaults
    assert "root seed" in text and "same rows" in text            # what --seed means
    assert "[1e-12, 0.01]" in text and "tolerance" in text            # what --tol means
    assert "trials/s" in text and "--no-progress" in text
    assert "2..12" in text and "2..12..2" in text                  # the range syntax
    assert "paper-fig1" in text and "quick" in text                # the presets
    assert "jsonl" in text and "JSON Lines" in text


@pytest.mark.parametrize("name", ["hull-test", "plot", "query"])
def test_other_commands_name_their_choices(name):
    text = " ".join(help_text(name).split())
    if name == "hull-test":
        for s in solver_names():
            assert s in text
        assert "pca:K" in text and "digits" in text and "paper-digits" in text and "[1e-12, 0.01]" in text
    if name == "plot":
        assert "ambient" in text and "affine" in text and ".png" in text and "one p̂ panel" in text
    if name == "query":
        assert "jsonl" in text and "N_half" in text


def test_json_is_one_document_and_jsonl_one_object_per_line(small_results, capsys):
    assert main(["query", str(small_results), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert isinstance(doc, list) and len(doc) == 6 and {"p_hat", "ci_low", "d", "n"} <= set(doc[0])
    assert main(["query", str(small_results), "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == doc
    assert main(["query", str(small_results), "--thresholds", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list) and {r["d"] for r in rows} == {2, 4}


def test_json_has_no_nan_tokens():
    import math

    import pyarrow as pa

    from mc_hull.cli.format import render

    table = pa.table({"a": [1.0, math.nan, math.inf], "b": ["x", None, "z"]})
    doc = json.loads(render(table, "json"), parse_constant=lambda c: pytest.fail(f"non-JSON token {c}"))
    assert doc == [{"a": 1.0, "b": "x"}, {"a": None, "b": None}, {"a": None, "b": "z"}]
    assert len(render(table, "jsonl").splitlines()) == 3


@pytest.mark.parametrize("argv", [["query"], ["query", "--thresholds"], ["plot", "--out", "FIG"]])
def test_empty_directory_exits_2_with_a_prefixed_line(tmp_path, capsys, argv):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [a if a != "FIG" else str(tmp_path / "f.png") for a in argv]
    assert main([argv[0], str(empty), *argv[1:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mc-hull: error:") and "no results yet" in err[0]
    assert not (tmp_path / "f.png").exists()


@pytest.mark.parametrize("run_id", ["0123456789ab", "nothex!", "abc"])
@pytest.mark.parametrize("cmd", ["query", "plot"])
def test_unknown_run_id_is_named_and_known_ones_listed(small_results, small_spec, tmp_path, capsys, run_id, cmd):
    extra = ["--out", str(tmp_path / "f.png")] if cmd == "plot" else []
    assert main([cmd, str(small_results), "--run", run_id, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown run id" in err[0] and small_spec.run_id in err[0]
    assert main(["query", str(small_results), "--run", small_spec.run_id]) == 0  # the known one works


def test_thresholds_note_why_a_d_has_no_n_half(tmp_path, capsys):
    out = tmp_path / "out"
    # sphere points are never inside: p = 0 at every N, so no N½
    # (8 training sets: with 2, the t critical value on 1 degree of freedom makes every interval hold 1/2)
    assert main(["run", "--distribution", "sphere", "--dims", "3", "--sizes", "5,50", "--trials", "40",
                 "--queries-per-set", "5", "--serial", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["query", str(out), "--thresholds"]) == 0
    printed = capsys.readouterr().out
    assert "# no N_half for sphere d = 3: p is below 1/2 up to N = 50 (99% intervals wholly below 1/2)" in printed


def test_no_n_half_reasons():
    from mc_hull.cli.notes import no_n_half_reason, reason_from_cells

    assert no_n_half_reason({"n_half": 12.0, "n_half_low": 10.0, "n_half_high": 14.0}) is None
    assert "N½ is above 10,000" in no_n_half_reason({"n_half": None, "n_half_low": 1e4, "n_half_high": float("inf")})
    assert "add smaller N" in no_n_half_reason({"n_half": None, "n_half_low": 0.0, "n_half_high": 10.0})
    assert "(10, 40]" in no_n_half_reason({"n_half": None, "n_half_low": 10.0, "n_half_high": 40.0})
    assert no_n_half_reason({"n_half": None, "n_half_low": 0.0, "n_half_high": float("inf")}) is None
    # p̂ above 1/2 is no evidence while the interval holds 1/2 (tests/test_notes_intervals.py has the class)
    cells = [{"n": 10, "p_hat": 0.7, "ci_low": 0.45, "ci_high": 0.85}, {"n": 100, "p_hat": 0.9, "ci_low": 0.8,
                                                                      "ci_high": 0.95}]
    assert "N½ is at most 100" in reason_from_cells(cells) and "(10) hold 1/2" in reason_from_cells(cells)
    assert "no 99% interval" in reason_from_cells([{"n": 10, "p_hat": 0.3}, {"n": 100, "p_hat": 0.7}])
    assert reason_from_cells([{"n": 10, "p_hat": None}]) == "no decided trials yet"
