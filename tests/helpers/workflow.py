"""Expands a GitHub Actions workflow into the steps one job runs, for the test that runs
the release workflow here, job by job.

Usage: workflow.py WORKFLOW SECRETS.json  ->  JSON on stdout:
  [{"job": NAME, "matrix": {...}, "needs": [...], "steps": [STEP, ...]}, ...]
one entry per job and matrix combination, in the workflow's order. A STEP is
  {"name": ..., "run": SCRIPT, "env": {...}}            for a `run:` step,
  {"name": ..., "uses": "actions/checkout", "with": {...}} for an action.
Every `${{ ... }}` is evaluated: `matrix.K`, `secrets.K`,
`secrets[format('...{0}...', matrix.K)]` and `runner.temp` (as `${RUNNER_TEMP}`, which the
shell or the harness replaces), nothing else; any other expression, key or action
version the harness does not know is an error, so that the workflow cannot use something
the test does not really run.
"""

import json
import re
import sys

import yaml

KNOWN_ACTIONS = {
    "actions/checkout@v4",
    "actions/upload-artifact@v4",
    "actions/download-artifact@v4",
}
STEP_KEYS = {"name", "run", "uses", "with", "env"}
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
FORMAT = re.compile(r"^secrets\[format\('([^']*)',\s*matrix\.([A-Za-z0-9_-]+)\)\]$")


def evaluate(expr, matrix, secrets):
    if expr == "runner.temp":
        # Each job's own: the harness puts its directory where this stands.
        return "${RUNNER_TEMP}"
    if expr.startswith("matrix."):
        key = expr[len("matrix."):]
        if key not in matrix:
            raise SystemExit(f"unknown matrix key in ${{{{ {expr} }}}}")
        return str(matrix[key])
    if expr.startswith("secrets."):
        key = expr[len("secrets."):]
        if key not in secrets:
            raise SystemExit(f"unknown secret in ${{{{ {expr} }}}}")
        return secrets[key]
    m = FORMAT.match(expr)
    if m:
        key = m.group(1).replace("{0}", str(matrix[m.group(2)]))
        if key not in secrets:
            raise SystemExit(f"unknown secret {key} in ${{{{ {expr} }}}}")
        return secrets[key]
    raise SystemExit(f"the harness cannot evaluate ${{{{ {expr} }}}}")


def expand(value, matrix, secrets):
    if isinstance(value, str):
        return EXPR.sub(lambda m: evaluate(m.group(1), matrix, secrets), value)
    if isinstance(value, dict):
        return {k: expand(v, matrix, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, matrix, secrets) for v in value]
    return value


def combinations(job):
    strategy = job.get("strategy", {})
    matrix = strategy.get("matrix")
    if matrix is None:
        return [{}]
    if set(matrix) != {"include"}:
        raise SystemExit("the harness expands `matrix: include:` lists only")
    return matrix["include"]


def main():
    workflow = yaml.safe_load(open(sys.argv[1]))
    secrets = json.load(open(sys.argv[2]))
    out = []
    for name, job in workflow["jobs"].items():
        needs = job.get("needs", [])
        if isinstance(needs, str):
            needs = [needs]
        for matrix in combinations(job):
            steps = []
            for step in job["steps"]:
                unknown = set(step) - STEP_KEYS
                if unknown:
                    raise SystemExit(f"step {step.get('name')}: unknown keys {unknown}")
                if "uses" in step:
                    if step["uses"] not in KNOWN_ACTIONS:
                        raise SystemExit(f"the harness does not run {step['uses']}")
                    steps.append(
                        {
                            "name": step.get("name", step["uses"]),
                            "uses": step["uses"].split("@")[0],
                            "with": expand(step.get("with", {}), matrix, secrets),
                        }
                    )
                else:
                    steps.append(
                        {
                            "name": step.get("name", "run"),
                            "run": expand(step["run"], matrix, secrets),
                            "env": expand(step.get("env", {}), matrix, secrets),
                        }
                    )
            out.append({"job": name, "matrix": matrix, "needs": needs, "steps": steps})
    json.dump(out, sys.stdout)


main()
