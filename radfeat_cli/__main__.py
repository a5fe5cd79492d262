"""``python -m radfeat_cli``: the ``radfeat`` command line."""

from radfeat_cli.main import main

main()
