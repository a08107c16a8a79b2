"""The docs lead to what exists, and experiment comments state no number we measured."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A file name in prose or code spans; ``<name>``, ``*`` and ``../`` names are left alone.
FILE_NAME = re.compile(r"(?<![\w./<>{}*$-])(\.?\w[\w./-]*\.(?:py|md|yaml|yml|cfg|toml|txt))(?![\w/])")
MODULE_ATTR = re.compile(r"(?<![\w./<>{}*$-])(\w[\w/]*/\w+)\.(\w+)(?![\w/.(])")  # nn/cpn.CPN
DOTTED = re.compile(r"(?<![\w./-])(?:vidpose\.)?([a-z_]\w*(?:\.\w+)+)(?![\w/])")  # run.data.ensure_data
EXTENSIONS = {"py", "md", "yaml", "yml", "json", "txt", "csv", "jpg", "ckpt", "pth", "cfg", "toml"}
# Written by a run, `make report` or the CI, not kept in the repository.
WRITTEN = {"config.yaml", "finished.yaml", "wandb_id.txt", "wandb_url.txt", "report/report.md",
           "overfit.txt", "bench.txt"}
# Our measurements (results, timings) go to docs/RESULTS.md; the paper's numbers may stay.
MEASURED = re.compile(r"\bmeasured\b[^.]*?\d|\b(?:ours reached|we got|our runs?)\b[^.]*?\d"
                      r"|\d\s*(?:s|seconds|min|minutes)\b[^.]*?\b(?:an epoch|per epoch|CPU)\b"
                      r"|\(\d[\d.]*\s+here\)|(?:~|\babout )\d", re.I)


def repo_files() -> list[str]:
    found = [p.name for p in ROOT.iterdir() if p.is_file()]
    for top in ("src", "data_modules", "callbacks", "tests", "experiments", "benchmarks", "docs",
                ".github", ".ci"):
        for folder, dirs, files in os.walk(ROOT / top):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            found += [(Path(folder) / f).relative_to(ROOT).as_posix() for f in files]
    return found


@pytest.mark.parametrize("doc", ["docs/DESIGN.md", "README.md"])
def test_every_file_a_doc_names_exists(doc: str) -> None:
    files, text = repo_files(), (ROOT / doc).read_text()

    def where(name: str) -> list[str]:
        return [f for f in files if f == name or f.endswith("/" + name.removeprefix("./"))]

    def defines(source: Path, attr: str) -> bool:
        return bool(re.search(rf"^\s*(def|class) {attr}\b|^{attr}\b|^(from|import) .*\b{attr}\b",
                              source.read_text(), re.M))

    def module(parts: list[str]) -> Path | None:  # the file of vidpose.<parts>
        path = (ROOT if parts[0] in ("data_modules", "callbacks") else ROOT / "src/vidpose").joinpath(*parts)
        return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.is_file()), None)

    missing = [n for n in FILE_NAME.findall(text) if n not in WRITTEN and not where(n)]
    for name, attr in MODULE_ATTR.findall(text):  # dir/module.name: defined in that module
        sources = [] if where(f"{name}.{attr}") else where(name + ".py")
        if sources and not any(defines(ROOT / s, attr) for s in sources):
            missing.append(f"{name}.{attr}")
    for span in re.findall(r"`([^`\n]+)`", text):  # package.module.name (config keys resolve to none)
        for dotted in DOTTED.findall(span):
            parts = dotted.split(".")  # the longest module prefix defines (or holds) the next name
            k = next((k for k in range(len(parts) - 1, 0, -1) if module(parts[:k])), 0)
            if k and parts[-1] not in EXTENSIONS and not (defines(module(parts[:k]), parts[k])
                                                          or module(parts[:k + 1])):
                missing.append(dotted)
    assert not missing, f"{doc} names what the repository lacks: {sorted(set(missing))}"


def test_the_walk_of_one_batch_names_code_that_exists() -> None:
    walk = (ROOT / "docs/DESIGN.md").read_text().split("### One batch", 1)[1].split("\n## ", 1)[0]
    code = " ".join((ROOT / f).read_text() for f in repo_files()
                    if f == "Makefile" or f.endswith((".py", ".yaml")) and not f.startswith("tests/"))
    names = {n for span in re.findall(r"`([^`]+)`", walk)
             for n in re.findall(r"(?<![\w./\"-])[A-Za-z_]\w*(?![\w/\"-])", span)}
    missing = names - set(re.findall(r"\w+", code))
    assert not missing, f"DESIGN.md's walk of one batch names what the code lacks: {sorted(missing)}"


def test_no_experiment_comment_states_a_measured_number() -> None:
    found = []
    for path in sorted((ROOT / "experiments").rglob("*.yaml")):
        block: list[str] = []  # consecutive comment lines: a sentence may wrap
        for line in path.read_text().splitlines() + [""]:
            comment = re.search(r"(?:^|\s)#(.*)$", line)
            block += [comment.group(1)] if comment else []
            if not line.lstrip().startswith("#"):  # a key or blank line ends the block
                match = MEASURED.search(" ".join(block))
                found += [f"{path.relative_to(ROOT)}: {match.group(0)!r}"] if match else []
                block = []
    assert not found, "measured numbers belong in docs/RESULTS.md (make results):\n" + "\n".join(found)
