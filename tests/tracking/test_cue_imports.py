"""The tracking modules import one another without a circle; cues never import a tracker;
every registered cue name builds."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vidpose.keypoints import POSETRACK18
from vidpose.tracking.correspondence import CorrespondenceMemory
from vidpose.tracking.cues import CUES, Cue, make_cue

TRACKING = Path(__file__).resolve().parents[2] / "src" / "vidpose" / "tracking"
CUE_MODULES = ("cues", "similarity", "flow", "reid", "correspondence")


def tracking_imports() -> dict[str, set[str]]:
    """module -> the vidpose.tracking modules it imports, at any depth of its AST (an import
    inside a function still makes a circle)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(TRACKING.glob("*.py")):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[:2] == ["vidpose", "tracking"] and len(parts) > 2:
                    found.add(parts[2])
        graph[path.stem] = found & {p.stem for p in TRACKING.glob("*.py")}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (depth-first search), None when there is none."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_circle():
    assert cycle({"greedy": {"flow"}, "flow": {"greedy"}}) == ["flow", "greedy", "flow"]
    assert cycle({"greedy": {"cues"}, "cues": {"flow"}, "flow": set()}) is None


def test_tracking_modules_import_without_a_circle():
    graph = tracking_imports()
    assert {"cues", "greedy", "flow", "reid"} <= set(graph)
    assert cycle(graph) is None, f"import circle: {' -> '.join(cycle(graph))}"


def test_cues_never_import_the_tracker():
    graph = tracking_imports()
    for module in CUE_MODULES:
        assert "greedy" not in graph[module], f"tracking/{module}.py imports the greedy tracker"
    assert "cues" in graph["greedy"]  # the tracker takes cues from the one registry


@pytest.mark.parametrize("name", list(CUES))
def test_every_registered_cue_builds(name):
    options = {"memory": CorrespondenceMemory(propagator=None)} if name == "correspondence" else {}
    cue = make_cue(name, POSETRACK18.sigmas, **options)
    assert isinstance(cue, Cue)
