"""The design layer: config dataclasses, task settings, study designs and their checks.

Torch-free, Ray-free and PyAV-free (an import-linter contract keeps it so): composing a config,
checking a study and printing its design never load the training stack. Builds on
``search.results`` and ``arch_space``; the runner (``search.run``, ``search.driver``, ...) is on
top of it.
"""
