"""Experiment tooling around the method: the trainer and its checkpoints, sweeps, aggregation into tables and
plots, and the command line (``python -m designer``)."""
