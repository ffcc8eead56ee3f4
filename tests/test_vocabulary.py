"""One vocabulary: every subcommand's flags and every public signature use a name for one meaning only."""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys

import pytest
import torch

import explainer
from explainer.cli import build_parser, cli_syntax, main, subcommand_parser
from explainer.errors import InputError


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


COMMANDS = _subcommands()
#: Every subcommand's help and --budget follow the vocabulary.
CHECKED = list(COMMANDS)


def _visible(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions for option in action.option_strings
            if action.help != argparse.SUPPRESS}


def test_every_flag_renders_its_help_without_format_leftovers():
    for name, parser in ((n, COMMANDS[n]) for n in CHECKED):
        text = parser.format_help()
        assert "%%" not in text and "%(" not in text, name
        assert "(default [" not in text and "default ['" not in text, f"{name}: a list default shown as Python"


def test_top_k_is_the_number_of_predictions_shown_everywhere():
    for name, parser in COMMANDS.items():
        flags = _visible(parser)
        assert "--top" not in flags, f"{name}: --top is ambiguous; --top-k is the predictions shown"
        if "--top-k" in flags:
            assert "predict" in (flags["--top-k"].help or ""), name
    assert "--ablate" in _visible(COMMANDS["ablate"])  # the channel count has its own name
    for function in (explainer.ablate, explainer.Classifier.predict):
        assert inspect.signature(function).parameters["top_k"].default == 5


def test_a_model_is_loaded_with_the_same_flags_everywhere():
    for name, parser in COMMANDS.items():
        flags = _visible(parser)
        if "--model" in flags and name not in ("evaluate", "transfer"):  # evaluate: train:cnn; transfer: a backbone
            assert {"--arch", "--random-weights", "--device"} <= set(flags), name


def test_a_dataset_is_named_with_dataset_everywhere():
    for name in ("evaluate", "train", "sweep", "transfer"):
        assert "--dataset" in _visible(COMMANDS[name]), f"{name}: a dataset name is given with --dataset"
    for name, parser in COMMANDS.items():
        for action in parser._actions:
            if not action.option_strings:  # positionals are files, never dataset names
                assert "dataset" not in (action.help or "").split("(")[0], f"{name}: {action.dest} names a dataset"


def test_evaluate_takes_files_or_one_dataset_and_says_which_is_missing(capsys, tmp_path):
    assert main(["evaluate", "--method", "saliency"]) == 2
    assert "--dataset NAME" in capsys.readouterr().err
    assert main(["evaluate", "a.png", "--dataset", "digits", "--method", "saliency"]) == 2
    assert "not both" in capsys.readouterr().err
    from explainer.commands.evaluate import _data

    old = build_parser().parse_args(["evaluate", "digits"])
    assert _data(old) == "digits" and "evaluate --dataset digits" in capsys.readouterr().err  # 0.3 spelling still works
    assert _data(build_parser().parse_args(["evaluate", "--dataset", "digits"])) == "digits"
    assert _data(build_parser().parse_args(["evaluate", "a.png", "b.png"])) == ["a.png", "b.png"]


def test_out_is_a_file_and_out_dir_a_folder():
    for name, parser in COMMANDS.items():
        flags = _visible(parser)
        if "--out" in flags:
            assert flags["--out"].metavar in ("FILE", None), f"{name}: --out names a file"
        if "--out-dir" in flags:
            assert flags["--out-dir"].metavar == "DIR", name


def test_budget_means_seconds_with_zero_for_no_limit():
    for name, parser in ((n, COMMANDS[n]) for n in CHECKED):
        flags = _visible(parser)
        if "--budget" in flags:
            assert "SECONDS" == flags["--budget"].metavar and "0 = no limit" in (flags["--budget"].help or ""), name


def test_old_flag_names_still_work_and_say_what_to_write(capsys, tmp_path):
    args = build_parser().parse_args(["predict", "x.png", "--top", "3"])
    assert args.top_k == 3 and "--top-k" in capsys.readouterr().err
    args = build_parser().parse_args(["ablate", "x.png", "--top", "4"])
    assert args.channels_to_ablate == 4 and "--ablate" in capsys.readouterr().err
    args = build_parser().parse_args(["explain", "x.png", "--out", str(tmp_path)])
    assert args.out_dir == str(tmp_path)


def test_an_unknown_flag_shows_the_subcommands_usage_and_the_closest_flag(capsys):
    assert main(["predict", "cat.png", "--topk", "3"]) == 2
    err = capsys.readouterr().err
    assert "usage: explainer predict" in err and "did you mean --top-k?" in err


def test_library_errors_are_written_in_cli_syntax():
    parser = subcommand_parser(build_parser(), "explain")
    text = cli_syntax("CUDA is not available; use device='cpu', or load_model('r18.pt', arch='resnet18'); "
                      "pretrained=False gives random weights; budget_seconds=None.", parser)
    assert "--device cpu" in text and "--model r18.pt --arch resnet18" in text and "--random-weights" in text
    assert "device=" not in text and "budget_seconds=None" in text  # values that are not flags stay as they were


def test_misspelled_keywords_say_did_you_mean(bundled_classifier, photos):
    with pytest.raises(InputError, match=r"Did you mean top_k=\?"):
        bundled_classifier.predict(photos["cat"], topk=3)
    with pytest.raises(InputError, match=r"Did you mean method=\?"):
        explainer.explain(bundled_classifier, photos["cat"], methods=["saliency"])
    digits = explainer.load_dataset("digits")
    with pytest.raises(InputError, match=r"Did you mean epochs=\?"):
        explainer.fit(explainer.build_model("mlp", digits), digits, epoch=1)
    with pytest.raises(InputError, match=r"Did you mean layers=\?"):
        explainer.layer_activations(bundled_classifier, torch.zeros(1, 3, 224, 224), layer="conv_head")


def test_a_closed_pipe_ends_quietly():
    script = "import sys; from explainer.cli import main; sys.exit(main(['methods', '--json']))"
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert writer.stdout is not None
    writer.stdout.readline()
    writer.stdout.close()  # what `| head -1` does
    _, err = writer.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err
