"""Measuring: a model on held-out problems (``sgpo eval``), what each method would learn from a
rollouts file (``sgpo analyze``), learning-curve statistics and the reports of ``sgpo compare``."""
