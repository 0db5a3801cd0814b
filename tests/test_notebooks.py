"""The course notebooks run top to bottom in the quick budget, and are stored clean.

Each notebook runs in a fresh kernel with nbclient, with ``NASEDU_QUICK=1``
(environment variables of this process reach the kernel), from a fresh copy of
`notebooks/` as its working directory: a copy without the `runs/` folder that
earlier runs leave there, so a search that checkpoints into `runs/` really
runs instead of resuming a finished one, as on a fresh clone. The rest of the
repository is linked beside the copy, so paths like ``../assets`` resolve. Set ``NASEDU_BUDGET=full`` to run them in the full
budget instead, on a GPU. While they run, another process keeps one core
busy, as a browser beside the kernel or Binder's shared CPU would: a library
default that makes a busy machine crawl (torch's threads waiting for each
other) fails here instead of on a learner's laptop. Run one notebook's test with, for example:

    .venv/bin/python -m pytest -q tests/test_notebooks.py -k 01_search_spaces
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
IDS = [path.stem for path in NOTEBOOKS]
CELL_TIMEOUT = 900  # seconds per cell
KERNEL = "python3"  # `make install` puts this kernelspec into .venv, pointing at .venv's python
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Clears outputs, execution counts, widget state and run timings; keeps cell tags
# (the `parameters` tag) and the kernelspec. Plain `--clear-output` keeps widget state.
CLEAR_COMMAND = (
    ".venv/bin/jupyter nbconvert --clear-output --inplace --ClearMetadataPreprocessor.enabled=True "
    "--ClearMetadataPreprocessor.preserve_cell_metadata_mask=tags "
    "--ClearMetadataPreprocessor.preserve_nb_metadata_mask=kernelspec "
    "--ClearMetadataPreprocessor.preserve_nb_metadata_mask=language_info notebooks/*.ipynb"
)


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


# ---------------------------------------------------------------------------
# Stored without outputs (fast)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_stored_without_outputs(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    dirty = [
        index for index, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name} is stored with outputs or execution counts in code cells {dirty}; "
        f"clear them with: {CLEAR_COMMAND}"
    )
    assert "widgets" not in notebook.get("metadata", {}), (
        f"{path.name} stores widget state in its metadata; clear it with: {CLEAR_COMMAND}"
    )


# ---------------------------------------------------------------------------
# Executed top to bottom (slow: marked `notebook`)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def kernel_name(tmp_path_factory):
    """The `python3` kernel, made sure to run this interpreter (and so this
    environment's nasedu). If the installed kernelspec points elsewhere, a
    temporary one that does is put first on JUPYTER_PATH."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv0 = KernelSpecManager().get_kernel_spec(KERNEL).argv[0]
    except NoSuchKernel:
        argv0 = None
    if argv0 is None or not _same_program(argv0, sys.executable):
        directory = tmp_path_factory.mktemp("jupyter")
        spec = directory / "kernels" / KERNEL
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (nasedu tests)", "language": "python",
        }))
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(directory), os.environ.get("JUPYTER_PATH")]))
    return KERNEL


def _same_program(a, b):
    a = shutil.which(a) or a
    return os.path.abspath(a) == os.path.abspath(b) or os.path.realpath(a) == os.path.realpath(b)


@pytest.fixture(scope="module")
def busy_core():
    """Another process spinning on one core for as long as the notebooks run."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield spinner
    finally:
        spinner.kill()
        spinner.wait()


@pytest.fixture
def notebook_workdir(tmp_path):
    """A copy of notebooks/ without run outputs, beside links to the rest of the repository."""
    root = NOTEBOOK_DIR.parent
    for entry in root.iterdir():
        if entry.name != NOTEBOOK_DIR.name:
            (tmp_path / entry.name).symlink_to(entry)
    shutil.copytree(NOTEBOOK_DIR, tmp_path / NOTEBOOK_DIR.name,
                    ignore=shutil.ignore_patterns("runs", "data", ".ipynb_checkpoints", "__pycache__"))
    return tmp_path / NOTEBOOK_DIR.name


def _failing_cell(notebook):
    """Index and source of the first code cell whose output is an error."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            return index, cell.source
    return None, None


def _running_cell(notebook):
    """Index and source of the first code cell that did not finish (no execution count)."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and cell.get("execution_count") is None and cell.source.strip():
            return index, cell.source
    return None, None


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs(path, kernel_name, notebook_workdir, busy_core, monkeypatch):
    assert busy_core.poll() is None, "the process keeping a core busy has stopped"
    if not os.environ.get("NASEDU_BUDGET"):
        monkeypatch.setenv("NASEDU_QUICK", "1")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=CELL_TIMEOUT, kernel_name=kernel_name,
        resources={"metadata": {"path": str(notebook_workdir)}},
    )
    start = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        index, source = _failing_cell(notebook)
        pytest.fail(f"{path.name}: code cell {index} failed:\n--- cell source ---\n{source}\n"
                    f"--- error ---\n{ANSI.sub('', str(error))}", pytrace=False)
    except nbclient.exceptions.DeadKernelError:
        index, source = _running_cell(notebook)
        pytest.fail(f"{path.name}: the kernel died (out of memory, or killed) in code cell {index}:\n"
                    f"--- cell source ---\n{source}", pytrace=False)
    except nbclient.exceptions.CellTimeoutError as error:
        pytest.fail(f"{path.name}: a cell ran longer than {CELL_TIMEOUT} s:\n{ANSI.sub('', str(error))}", pytrace=False)
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
