"""The dashboard as a learner sees it: JupyterLab in headless Chromium.

A fresh `jupyter lab` (fixtures in conftest.py) opens a notebook, runs it
cell by cell, and the test reads the page: the plot rendered, its loss
curve grew while the search ran (sampled inside the page, every 50 ms), the
heatmaps and the cell SVGs are there, and no cell shows an error. A
screenshot of the dashboard goes to test-artifacts/.

Needs Debian's Chromium (`sudo apt-get install chromium`; `make test`
installs it where it can); skipped with that message otherwise.
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
DARTS_NOTEBOOK = REPO / "notebooks" / "04_softmax_relaxation_darts.ipynb"

TINY_EPOCHS = 12  # long enough (about 3 s on the fast supernet path) for the curve to grow on screen
TINY_STEPS = 5 * TINY_EPOCHS  # 5 steps per epoch on the synthetic data
LIVE_CELLS = [
    # One torch thread: the kernel shares two cores with the server and Chromium.
    "import torch, nasedu, nasedu.viz\ntorch.set_num_threads(1)",
    "dashboard = nasedu.viz.Dashboard()\ndashboard",
    "result = nasedu.search('darts', data='synthetic', C=4, layers=2, steps=2, multiplier=2, "
    f"epochs={TINY_EPOCHS}, batch_size=32, progress=False, callbacks=[dashboard])\n"
    "print('done', len(result.history.steps))",
]

PLOT = ".nasedu-dashboard .js-plotly-plot"
KERNEL_IDLE = re.compile(r"\(ipykernel\) \| Idle")

# Inside the page: every 50 ms, the number of points of the dashboard's loss curve.
START_SAMPLING = """(selector) => {
    window.__nasedu_samples = [];
    const t0 = performance.now();
    window.__nasedu_sampler = setInterval(() => {
        const plot = document.querySelector(selector);
        const trace = plot && plot.data && plot.data[0];
        const n = trace && trace.x ? trace.x.length : -1;
        window.__nasedu_samples.push([Math.round(performance.now() - t0), n]);
    }, 50);
}"""
STOP_SAMPLING = "() => { clearInterval(window.__nasedu_sampler); return window.__nasedu_samples; }"
CURVE_LENGTH = """(selector) => {
    const plot = document.querySelector(selector);
    return plot && plot.data && plot.data[0] && plot.data[0].x ? plot.data[0].x.length : -1;
}"""

# Inside the page: titles (of subplots and axes) that overlap tick labels, legend entries, plot
# areas or each other, and the entropy axes' tick labels.
LAYOUT_REPORT = """({selector, entropy}) => {
    const plot = document.querySelector(selector);
    const boxes = (css) => [...plot.querySelectorAll(css)].map((e) => [e.textContent, e.getBoundingClientRect()])
        .filter(([, r]) => r.width > 0 && r.height > 0);
    const meet = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
    const titles = boxes('.gtitle, .annotation-text, [class^="g-x"][class$="title"] text, [class^="g-y"][class$="title"] text');
    const labels = boxes('.xaxislayer-above text, .yaxislayer-above text, .legendtext');
    const plots = boxes('.draglayer .nsewdrag').map(([, r], i) => ['plot area ' + i, r]);
    const overlaps = [];
    titles.forEach(([t, a], i) => {
        for (const [l, b] of labels.concat(plots)) if (meet(a, b)) overlaps.push(t + ' / ' + l);
        for (const [u, b] of titles.slice(i + 1)) if (meet(a, b)) overlaps.push(t + ' / ' + u);
    });
    const ticks = (subplot) => boxes('.subplot.' + subplot + ' .yaxislayer-above text').map(([text]) => text);
    return {overlaps, entropyTicks: entropy.map(ticks)};
}"""


def _write_notebook(path: Path, sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, path)


def _open(page, lab_server, name):
    page.goto(lab_server.page_url(name))
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    # The toolbar says "idle" before any kernel exists and keys sent then are
    # dropped: wait for the status bar's "(ipykernel) | Idle".
    page.locator(".jp-StatusBar-TextItem", has_text=KERNEL_IDLE).first.wait_for(timeout=120_000)


def _cells(page):
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell.jp-CodeCell")


def _prompt(cell) -> str:
    return (cell.locator(".jp-InputArea-prompt").first.text_content() or "").strip()


def _run_cell(page, index, timeout=300):
    """Run code cell `index` (Shift+Enter in command mode) and wait until it finished."""
    cell = _cells(page).nth(index)
    cell.locator(".jp-InputArea-prompt").first.click()
    page.keyboard.press("Shift+Enter")
    deadline = time.monotonic() + 10
    while not re.fullmatch(r"\[(\*|\d+)\]:", _prompt(cell)):
        if time.monotonic() > deadline:
            pytest.fail(f"cell {index} did not start: its prompt reads {_prompt(cell)!r} (a dropped key?)")
        time.sleep(0.1)
    _wait_finished(page, [cell], timeout)
    return cell


def _wait_finished(page, cells, timeout):
    deadline = time.monotonic() + timeout
    while True:
        prompts = [_prompt(c) for c in cells]
        if all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"cells still running or not run after {timeout} s: {prompts}")
        time.sleep(0.25)


def _errors(page) -> list[str]:
    """Text of outputs that show an error: tracebacks and stderr naming an Error."""
    found = []
    for loc in (page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"),
                page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']")):
        found += [t for t in loc.all_inner_texts() if "Error" in t or "Traceback" in t]
    found += [t for t in page.locator(".jp-OutputArea-output").all_inner_texts() if "Traceback" in t]
    return found


def _final_length(page, expected, timeout=30):
    """Wait until the plot in the page shows `expected` points (the last messages may trail)."""
    deadline = time.monotonic() + timeout
    while True:
        n = page.evaluate(CURVE_LENGTH, PLOT)
        if n == expected or time.monotonic() > deadline:
            return n
        time.sleep(0.25)


def _check_dashboard(page, samples, expected_steps, screenshot_name, tables=2):
    """What a learner sees after the search: assertions read from the page. `tables`:
    how many distributions the strategy shows (2 for the DARTS cell, 1 for NAS-Bench-201)."""
    lengths = [n for _, n in samples if n >= 0]
    final = _final_length(page, expected_steps)
    assert final == expected_steps, f"the loss curve shows {final} points, expected {expected_steps}"
    # The curve grew while the search ran: partial lengths were on screen before the final one.
    partial = sorted({n for n in lengths if 0 < n < expected_steps})
    assert len(partial) >= 2, f"no growth seen while training ran; sampled lengths {sorted(set(lengths))}"
    assert lengths == sorted(lengths), "the curve shrank while training ran"
    dashboard = page.locator(".nasedu-dashboard").first
    assert page.locator(f"{PLOT} .heatmaplayer image").count() >= tables  # one heatmap per table
    assert page.locator(".nasedu-dashboard .widget-html svg").count() >= tables  # every part drawn
    status = page.locator(".nasedu-dashboard .nasedu-status").first.inner_text()
    assert status.startswith(f"finished: step {expected_steps}/{expected_steps}"), status
    # subplots: 2 curve panels, then one heatmap and one entropy plot per table
    entropy = [f"x{2 + tables + k}y{2 + tables + k}" for k in range(1, tables + 1)]
    layout = page.evaluate(LAYOUT_REPORT, {"selector": PLOT, "entropy": entropy})
    assert not layout["overlaps"], f"titles overlap other text or plots: {layout['overlaps']}"
    for ticks in layout["entropyTicks"]:  # a readable scale: no two ticks labelled alike
        assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), f"entropy axis ticks {ticks}"
    ARTIFACTS.mkdir(exist_ok=True)
    dashboard.scroll_into_view_if_needed()
    dashboard.screenshot(path=str(ARTIFACTS / screenshot_name))


def test_live_dashboard_in_jupyterlab(lab_server, page):
    _write_notebook(lab_server.root / "dashboard_live.ipynb", LIVE_CELLS)
    _open(page, lab_server, "dashboard_live.ipynb")
    _run_cell(page, 0, timeout=120)
    _run_cell(page, 1, timeout=60)
    # plotly.js comes with the widget (~5 MB): wait for the first draw before training starts.
    page.wait_for_selector(PLOT, timeout=90_000)
    page.evaluate(START_SAMPLING, PLOT)
    search = _run_cell(page, 2, timeout=300)
    samples = page.evaluate(STOP_SAMPLING)
    assert f"done {TINY_STEPS}" in search.locator(".jp-OutputArea").inner_text()
    assert not _errors(page), _errors(page)
    _check_dashboard(page, samples, TINY_STEPS, "dashboard_live.png")


@pytest.mark.skipif(not DARTS_NOTEBOOK.exists(), reason=f"{DARTS_NOTEBOOK.name} is not written yet")
def test_darts_notebook_runs_with_its_dashboard(lab_server, page):
    shutil.copy(DARTS_NOTEBOOK, lab_server.root / DARTS_NOTEBOOK.name)
    _open(page, lab_server, DARTS_NOTEBOOK.name)
    # Sample from the start: the dashboard appears when the search starts.
    page.evaluate(START_SAMPLING, PLOT)
    # Run every code cell in order, as "Restart and run all" would; the search cell takes longest.
    for index in range(_cells(page).count()):
        _run_cell(page, index, timeout=600)
    samples = page.evaluate(STOP_SAMPLING)
    assert not _errors(page), _errors(page)
    assert page.locator(PLOT).count() >= 1, "the notebook shows no dashboard"
    status = page.locator(".nasedu-dashboard .nasedu-status").first.inner_text()
    match = re.match(r"finished: step (\d+)/(\d+)", status)
    assert match and match.group(1) == match.group(2), status
    # the notebook searches the NAS-Bench-201 cell by default: one table, one cell
    _check_dashboard(page, samples, int(match.group(1)), "darts_notebook_dashboard.png", tables=1)
