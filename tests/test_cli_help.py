"""Every command has an example and every option a help text (typer's generated help)."""

from __future__ import annotations

import typer.main
from typer.testing import CliRunner

from radfeat_cli.main import app


def _commands(group, prefix=""):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, prefix + name + " ")
        else:
            yield prefix + name, command


def test_every_command_has_an_example_and_every_option_a_help_text():
    commands = dict(_commands(typer.main.get_command(app)))
    assert {"synth", "validate", "extract", "info", "benchmark", "tune", "train", "demo"} <= set(commands)
    assert {"fit", "predict", "evaluate"} <= set(commands)
    for name, command in commands.items():
        assert f"Example: radfeat {name}" in (command.help or ""), name
        undocumented = [p.name for p in command.params if p.name != "help" and not getattr(p, "help", None)]
        assert not undocumented, (name, undocumented)
        if any(p.name == "output" for p in command.params):
            output = next(p for p in command.params if p.name == "output")
            assert {"-o", "--output"} <= set(output.opts), name


def test_benchmark_help_lists_the_baselines():
    result = CliRunner().invoke(app, ["benchmark", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for baseline in ("suvmax", "clinical", "combined"):
        assert baseline in result.stdout
