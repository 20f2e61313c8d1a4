"""Judge state a checkpoint keeps, so that a resumed run gets the verdicts an uninterrupted one would.

A judge or wrapper whose future verdicts depend on what it has done so far implements
``state_dict() -> dict`` (plain JSON-able data) and ``load_state_dict(state)``: the noise wrapper
(its RNG), the cache (its verdicts). :func:`judge_state` walks the chain of wrappers through
``.inner`` (:func:`sgpo.judges.base.wrapper_chain`), and takes one entry per judge in it
(None for a judge without state). What a judge cannot save stays outside: a server's sampling
(``llm_http`` with temperature > 0) is not reproducible, resumed or not.
"""

from __future__ import annotations

from sgpo.errors import ConfigError
from sgpo.judges.base import wrapper_chain


def _stateful(judge: object | None) -> list[object]:
    # Only the layers with state: a lazy wrapper's ``.inner`` exists once its model has loaded, so
    # the full chain of a resumed judge can be shorter than the saved one while the state is the same.
    return [node for node in wrapper_chain(judge) if hasattr(node, "state_dict")]


def judge_state(judge: object | None) -> list[dict | None]:
    """The state of every layer of ``judge`` that has one, outermost first."""
    return [node.state_dict() for node in _stateful(judge)]


def load_judge_state(judge: object | None, states: list[dict | None]) -> None:
    """Restore what :func:`judge_state` saved into a judge built the same way."""
    states = [s for s in states if s is not None]  # checkpoints written with a None per stateless layer
    nodes = _stateful(judge)
    if len(nodes) != len(states):
        raise ConfigError(f"the checkpoint holds the state of {len(states)} judge layers, this judge has {len(nodes)}: "
                          "resume needs the judge the checkpoint was made with")
    for node, state in zip(nodes, states):
        node.load_state_dict(state)
