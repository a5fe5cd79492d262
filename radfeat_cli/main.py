"""The ``radfeat`` command line: the application layer on top of ``radfeat`` and ``models``.

Each command module parses its options, calls one library function and prints; nothing below this
package imports it. Command groups:

* :mod:`radfeat_cli.dicom_import` — ``import`` (a DICOM export → manifest);
* :mod:`radfeat_cli.tables` — ``synth``, ``validate``, ``extract``, ``info``;
* :mod:`radfeat_cli.habitats` — ``habitats fit``, ``habitats apply``;
* :mod:`radfeat_cli.benchmark` — ``benchmark``, ``tune``;
* :mod:`radfeat_cli.lifecycle` — ``fit``, ``predict``, ``evaluate``, ``survival`` (locked models, external
  cohorts);
* :mod:`radfeat_cli.multicentre` — ``describe``, ``batch-effect``, ``checklist`` (multi-centre studies);
* :mod:`radfeat_cli.train` — ``train`` (the fusion network);
* :mod:`radfeat_cli.demo` — ``demo``.

Exit codes: 0 success; 1 some cases are unusable or failed (data problem); 2 usage error.
"""

from __future__ import annotations

import typer

from radfeat import __version__
from radfeat_cli import benchmark, demo, dicom_import, habitats, lifecycle, multicentre, tables, train
from radfeat_cli.common import DEBUG, out

__all__ = ["app", "main"]

app = typer.Typer(
    name="radfeat",
    help="PET/CT radiomics: cohort manifest → feature table → honest models and statistics.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold patient identifiers
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"radfeat {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show full tracebacks of errors (normally one line with the fix)."
    ),
) -> None:
    """PET/CT radiomics feature tables, model benchmarks, statistics and a fusion network."""
    DEBUG["on"] = debug


for module in (dicom_import, tables, benchmark, lifecycle, multicentre, train, demo):
    app.registered_commands += module.app.registered_commands
app.add_typer(habitats.app, name="habitats")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
