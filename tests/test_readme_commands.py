"""The README's shell commands: every `explainer ...` line parses as written, and the quick ones run as written
(in a scratch folder, after `explainer samples` wrote the photos they name)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from conftest import CHROMIUM

from explainer.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"
#: Commands run for real, in README order (the rest train, sweep or need a cluster: they are parsed only).
RUN = ("models", "methods", "samples", "predict", "explain", "anatomy", "ablate", "train")


def _commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("explainer ")]


COMMANDS = _commands()


def test_the_readme_names_the_commands_it_should():
    names = [argv[0] for argv in COMMANDS]
    assert set(RUN) <= set(names) and {"evaluate", "sweep", "transfer", "check", "dashboard"} <= set(names)


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(argv)[:60] for argv in COMMANDS])
def test_every_readme_command_parses_as_written(argv, capsys):
    args = build_parser().parse_args(argv)
    assert callable(args.func)
    assert "deprecated" not in capsys.readouterr().err  # the README uses the current flags


@pytest.mark.slow  # ~35 s: loads the bundled model per command and trains the digits CNN to 97 %
def test_the_quick_readme_commands_run_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for argv in (a for a in COMMANDS if a[0] in RUN):
        assert main(argv) == 0, argv
        out = capsys.readouterr().out
        if "--json" in argv:
            json.loads(out)  # a whole JSON document, nothing else on stdout
    assert (tmp_path / "cat.png").is_file() and (tmp_path / "maps" / "cat_0_methods.html").is_file()
    if Path(CHROMIUM).exists():  # kaleido renders the PNGs (one browser for all of them)
        assert sorted(p.name for p in (tmp_path / "maps").glob("*.png")) == [
            "cat_0_gradcam.png", "cat_0_integrated_gradients.png", "cat_0_methods.png"]
