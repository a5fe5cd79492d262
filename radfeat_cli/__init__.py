"""radfeat's application layer: the ``radfeat`` command line and the demo (imports radfeat and models)."""
