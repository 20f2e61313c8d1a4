"""Tasks: prompts with reference solutions, an outcome verifier and, where one exists, a rule judge."""

from sgpo.tasks.base import Problem, Task

__all__ = ["Problem", "Task"]
