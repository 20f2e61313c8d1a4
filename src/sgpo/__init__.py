"""Stepwise Guided Policy Optimization (SGPO).

Data flows one way: task -> rollout -> verify -> judge -> rewards -> advantages -> loss -> update.
The maths lives in :mod:`sgpo.core`; everything else is infrastructure around it.
"""

__version__ = "0.1.0"
