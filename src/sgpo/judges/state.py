"""Judge state a checkpoint keeps, so that a resumed run gets the verdicts an uninterrupted one would.

A judge or wrapper whose future verdicts depend on what it has done so far implements
``state_dict() -> dict`` (plain JSON-able data) and ``load_state_dict(state)``: the noise wrapper
(its RNG), the cache (its verdicts). :func:`judge_state` walks the chain of wrappers through
``.inner``, as :func:`sgpo.judges.stats.collect_stats` does, and takes one entry per judge in it
(None for a judge without state). What a judge cannot save stays outside: a server's sampling
(``llm_http`` with temperature > 0) is not reproducible, resumed or not.
"""

from __future__ import annotations


def _chain(judge: object) -> list[object]:
    nodes, seen = [], set()
    while judge is not None and id(judge) not in seen:
        seen.add(id(judge))
        nodes.append(judge)
        judge = getattr(judge, "inner", None)
    return nodes


def judge_state(judge: object | None) -> list[dict | None]:
    """The state of ``judge`` and of everything it wraps, outermost first."""
    return [node.state_dict() if hasattr(node, "state_dict") else None for node in _chain(judge)]


def load_judge_state(judge: object | None, states: list[dict | None]) -> None:
    """Restore what :func:`judge_state` saved into a judge built the same way."""
    nodes = _chain(judge)
    if len(nodes) != len(states):
        raise ValueError(f"the saved judge state has {len(states)} layers, this judge {len(nodes)}: not the same judge")
    for node, state in zip(nodes, states):
        if state is not None:
            node.load_state_dict(state)
