"""docs/compatibility.md stays true: what it calls supported imports from taskscope, what it
calls unsupported does not, and the tests it names as proof exist."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "compatibility.md"
STATUSES = {"same", "different", "not supported", "—"}
# `parsl.a.b.Name` or `parsl.a.b.Name(param=)`
PATH = re.compile(r"^parsl(?:\.[A-Za-z_]\w*)*(?:\((\w+)=\))?$")


def _rows() -> list[tuple[str, str, str, str]]:
    rows = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("| ") or line.startswith(("| Parsl |", "|---")):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"a table row needs 4 cells: {line}"
        rows.append((cells[0], cells[1], cells[2], cells[3]))
    return rows


ROWS = _rows()


def _paths(cell: str) -> list[str]:
    """The Parsl paths a row is about: backticked ``parsl...`` tokens of a cell that starts
    with one (a cell that starts with words describes behaviour, tested elsewhere)."""
    if not cell.startswith("`parsl"):
        return []
    return [t for t in re.findall(r"`([^`]+)`", cell) if PATH.match(t)]


def _resolve(parsl_path: str) -> object:
    """Import ``parsl.a.b.Name`` as ``taskscope.a.b.Name``: the longest importable module
    prefix, then attributes. ImportError/AttributeError if it is not there."""
    parts = ["taskscope", *parsl_path.split(".")[1:]]
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as e:
            if e.name is not None and ".".join(parts[:cut]).startswith(e.name) is False:
                raise
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(parsl_path)


def test_the_table_has_rows_with_known_statuses():
    assert len(ROWS) > 100
    for parsl, status, notes, _ in ROWS:
        assert status in STATUSES, f"{parsl}: status {status!r}"
        if status in ("different", "not supported"):
            assert notes, f"{parsl}: a {status} row must say how or why"


SUPPORTED = [
    (path, cell)
    for cell, status, _, _ in ROWS
    if status in ("same", "different")
    for path in _paths(cell)
]
UNSUPPORTED = [
    path
    for cell, status, _, _ in ROWS
    if status == "not supported"
    for path in _paths(cell)
    if "(" not in path
]


@pytest.mark.parametrize(("path", "cell"), SUPPORTED, ids=[p for p, _ in SUPPORTED])
def test_every_supported_path_imports_from_taskscope(path, cell):
    match = PATH.match(path)
    assert match
    param = match.group(1)
    obj = _resolve(path.split("(")[0])
    if param is not None:
        assert param in inspect.signature(obj).parameters, f"{path}: no parameter {param!r}"


@pytest.mark.parametrize("path", UNSUPPORTED)
def test_every_unsupported_path_is_really_absent(path):
    with pytest.raises((ImportError, AttributeError)):
        _resolve(path)


def test_dfk_attributes_in_the_table_exist():
    from taskscope.dataflow.dflow import DataFlowKernel

    names = {
        token.split(".", 1)[1].split("(")[0]
        for cell, status, _, _ in ROWS
        if status in ("same", "different")
        for token in re.findall(r"`(dfk\.\w+)", cell)
    }
    assert names >= {"task_state_counts", "cleanup_called", "cleanup"}
    for name in names:
        assert hasattr(DataFlowKernel, name), name


PROOFS = [proof for *_, proof in ROWS if proof]


@pytest.mark.parametrize("proof", sorted(set(PROOFS)))
def test_every_named_proof_is_a_test_in_tests_compat(proof):
    match = re.fullmatch(r"`(test_\w+\.py)::(test_\w+)`", proof)
    assert match, f"proof {proof!r} must look like `test_file.py::test_name`"
    path = Path(__file__).parent / match.group(1)
    assert path.exists(), proof
    defined = {
        node.name
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef)
    }
    assert match.group(2) in defined, proof


def test_the_process_tree_paragraph_names_a_test_that_exists():
    text = DOC.read_text()
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", text)
    for file, name in named:
        assert f"def {name}(" in (Path(__file__).parent / file).read_text(), (file, name)
