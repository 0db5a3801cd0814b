"""The `nasedu` command, run in-process through `nasedu.cli.main`."""
import json
import os
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from nasedu.cli import main
from nasedu.genotypes import DARTS_V1, DARTS_V2, GENOTYPES, PDARTS, genotype_from_json, genotype_to_json
from nasedu.network import Network, count_parameters

TINY = ["--data", "synthetic", "--epochs", "2", "--C", "4", "--layers", "2"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def assert_svg(path):
    root = ET.parse(path).getroot()
    assert root.tag.rsplit("}", 1)[-1] == "svg", path


# ---------------------------------------------------------------------------
# search
# ---------------------------------------------------------------------------

def test_search_writes_results_and_resumes_instead_of_starting_over(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "search", "darts", *TINY, "--out", out)
    assert code == 0, err
    assert re.search(r"epoch 1/2 .*supernet val loss .* acc .*oneshot val loss", stdout) and re.search(r"epoch 2/2 ", stdout)
    assert "architecture: Genotype(normal=[" in stdout
    assert "darts" in err and "4/4" in err  # the tqdm bar (2 epochs of 2 steps)

    saved = json.loads((out / "architecture.json").read_text())
    assert saved["space"]["name"] == "darts" and saved["space"]["C"] == 4
    genotype = genotype_from_json(json.dumps(saved["architecture"]))
    assert f"architecture: {genotype}" in stdout
    assert_svg(out / "normal.svg") and assert_svg(out / "reduce.svg")
    history = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [0, 1]
    ckpt = out / "checkpoint.pt"
    assert ckpt.is_file()
    stamp = ckpt.stat().st_mtime_ns

    # The same command again: resumes after the last epoch and trains nothing.
    code, stdout, err = run(capsys, "search", "darts", *TINY, "--out", out, "--no-progress")
    assert code == 0, err
    assert "already finished all 2 epochs" in stdout and "resuming at epoch 2" in stdout
    assert "epoch 1/2" not in stdout and "epoch 2/2" not in stdout
    assert ckpt.stat().st_mtime_ns == stamp
    assert len(json.loads((out / "history.json").read_text())["epochs"]) == 2
    assert json.loads((out / "architecture.json").read_text())["architecture"] == saved["architecture"]

    # A different search into the same folder is refused, naming the difference.
    code, stdout, err = run(capsys, "search", "darts", *TINY, "--seed", "1", "--out", out, "--no-progress")
    assert code == 2
    assert err.startswith("nasedu: error:") and "different search" in err and "seed: 0 -> 1" in err
    assert f"delete {out}" in err and "--out" in err and "resume=False" not in err  # advice for a shell user
    assert ckpt.stat().st_mtime_ns == stamp


def test_interrupted_search_exits_130_and_the_same_command_resumes(tmp_path, capsys, monkeypatch):
    from nasedu.callbacks import PrintLog

    original = PrintLog.on_epoch_end
    pressed = []

    def press_ctrl_c_after_first_epoch(self, run_, record):
        original(self, run_, record)
        if not pressed:
            pressed.append(record["epoch"])
            signal.raise_signal(signal.SIGINT)  # search() turns it into a stop at the next step boundary

    monkeypatch.setattr(PrintLog, "on_epoch_end", press_ctrl_c_after_first_epoch)
    out = tmp_path / "run"
    argv = ["search", "darts", *TINY, "--out", out, "--no-progress"]
    code, stdout, err = run(capsys, *argv)
    assert code == 130
    assert "stopped" in err and "run the same command again" in err and str(out) in err
    assert len(json.loads((out / "history.json").read_text())["epochs"]) == 1
    assert not (out / "normal.svg").exists()

    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    assert "resuming at epoch 1, step 3 of 4" in stdout and "epoch 2/2" in stdout and "epoch 1/2" not in stdout
    assert len(json.loads((out / "history.json").read_text())["epochs"]) == 2
    assert_svg(out / "normal.svg")


def test_search_default_out_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # An unknown data set stops the search before anything is written, after
    # the default folder runs/<strategy>-<data>-seed<seed> has been announced.
    code, stdout, err = run(capsys, "search", "darts", "--data", "nonexistent", "--seed", "7", "--no-progress")
    assert code == 2 and "unknown data set 'nonexistent'" in err
    assert "writing into runs/darts-nonexistent-seed7" in stdout.replace(os.sep, "/")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, message", [
    (["search", "pnas", "--data", "synthetic"], "unknown strategy 'pnas'; available: darts, random, sge"),
    (["search", "darts", "--space", "nb101", "--data", "synthetic"], "unknown search space 'nb101'"),
    (["search", "darts", "--data", "synthetic", "-o", "alpha_rl=1"], "unknown -o option(s) 'alpha_rl' (did you mean"),
    (["search", "darts", "--data", "imagenet", "--epochs", "1"], "unknown data set 'imagenet'; available: digits"),
    (["train", "DARTS_V2", "--data", "imagenet"], "unknown data set 'imagenet'; available: digits"),
])
def test_unknown_strategy_or_data_set_exit_2(argv, message, tmp_path, capsys):
    code, stdout, err = run(capsys, *argv, *(["--out", tmp_path / "x"] if argv[0] == "search" else []))
    assert code == 2
    assert err.startswith("nasedu: error: ") and err.count("\n") == 1  # one short line
    assert message in err
    assert not (tmp_path / "x" / "checkpoint.pt").exists()


def test_data_set_that_needs_a_download_offline_exits_2(tmp_path, capsys, monkeypatch):
    import nasedu.data

    monkeypatch.setenv("NASEDU_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(nasedu.data, "_online", lambda host, timeout=3.0: False)
    code, stdout, err = run(capsys, "train", "DARTS_V2", "--data", "cifar10", "--no-progress")
    assert code == 2
    assert err.startswith("nasedu: error: cifar10 must be downloaded") and "digits" in err


def test_bad_option_values_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["search", "darts", "--epochs", "0"])
    assert e.value.code == 2 and "must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["search", "darts", "--budget", "huge"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert main([]) == 2  # no command: the overview, and a usage error
    assert "search" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# draw
# ---------------------------------------------------------------------------

def test_draw_published_genotype(tmp_path, capsys):
    code, stdout, err = run(capsys, "draw", "DARTS_V2", "--out", tmp_path)
    assert code == 0, err
    paths = stdout.split()
    assert paths == [str(tmp_path / "DARTS_V2_normal.svg"), str(tmp_path / "DARTS_V2_reduce.svg")]
    for p in paths:
        assert_svg(p)
    assert "sep_conv_3x3" in (tmp_path / "DARTS_V2_normal.svg").read_text()
    assert "max_pool_3x3" in (tmp_path / "DARTS_V2_reduce.svg").read_text()


def test_draw_list(capsys):
    code, stdout, err = run(capsys, "draw", "--list")
    assert code == 0 and stdout.split() == list(GENOTYPES)


def test_draw_json_printed_and_search_folder(tmp_path, capsys):
    (tmp_path / "pdarts.json").write_text(genotype_to_json(PDARTS))
    (tmp_path / "v1.txt").write_text(str(DARTS_V1) + "\n")
    (tmp_path / "assigned.py").write_text(f"DARTS_V2 = {DARTS_V2}\n")
    (tmp_path / "run").mkdir()  # a search folder of an older nasedu, with genotype.json
    (tmp_path / "run" / "genotype.json").write_text(genotype_to_json(DARTS_V2))
    out = tmp_path / "svg"
    for arg, label in (("pdarts.json", "pdarts"), ("v1.txt", "v1"), ("assigned.py", "assigned"), ("run", "run")):
        code, stdout, err = run(capsys, "draw", tmp_path / arg, "--out", out)
        assert code == 0, err
        assert stdout.split() == [str(out / f"{label}_normal.svg"), str(out / f"{label}_reduce.svg")]
        assert_svg(out / f"{label}_reduce.svg")
    # The drawing follows the file: PDARTS's normal cell has a dil_conv_5x5, DARTS_V1's none.
    assert "dil_conv_5x5" in (out / "pdarts_normal.svg").read_text()
    assert "dil_conv_5x5" not in (out / "v1_normal.svg").read_text()


@pytest.mark.parametrize("content, message", [
    ('{"normal": [["sep_conv_3x3", 0]', "not valid JSON"),
    ('{"normal": [], "reduce": []}', "lacks field(s) ['normal_concat', 'reduce_concat']"),
    (genotype_to_json(DARTS_V2).replace("dil_conv_3x3", "conv_9x9"), "unknown operation 'conv_9x9'"),
    (str(DARTS_V2).replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 7)"), "input index 7 out of range"),
    ("Genotype(normal=[('sep_conv_3x3', 0)", "cannot parse genotype text"),
    ("Genotype(normal=__import__('os').system('true'), normal_concat=[2], reduce=[], reduce_concat=[2])",
     "cannot read"),
    ("hello", "expected text of the form Genotype("),
])
def test_draw_malformed_file_exits_2_naming_the_problem(content, message, tmp_path, capsys):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    code, stdout, err = run(capsys, "draw", path, "--out", tmp_path / "svg")
    assert code == 2
    assert err.startswith(f"nasedu: error: {path}: ") and message in err
    assert not (tmp_path / "svg").exists()


def test_draw_missing_file_binary_file_and_unknown_name_exit_2(tmp_path, capsys):
    code, _, err = run(capsys, "draw", tmp_path / "nope.json")
    assert code == 2 and "architecture file" in err and "nope.json' not found" in err
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00\x81binary")
    code, _, err = run(capsys, "draw", tmp_path / "bin.json")
    assert code == 2 and "is not a text file" in err
    code, _, err = run(capsys, "draw", "DARTS_V3")
    assert code == 2 and "'DARTS_V3' is neither a published genotype nor a file" in err
    assert all(name in err for name in GENOTYPES)
    code, _, err = run(capsys, "draw", tmp_path)  # a folder without architecture.json
    assert code == 2 and "without architecture.json" in err
    code, _, err = run(capsys, "draw")
    assert code == 2 and "--list" in err


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------

def test_train_reports_test_accuracy_and_parameters(tmp_path, capsys):
    code, stdout, err = run(capsys, "train", "DARTS_V2", "--data", "synthetic", "--epochs", "8", "--C", "4",
                            "--layers", "3", "--out", tmp_path)
    assert code == 0, err
    assert "epoch 8/8" in stdout and "train" in err  # per-epoch lines and the tqdm bar
    acc = float(re.search(r"test accuracy: ([0-9.]+)", stdout).group(1))
    assert acc > 0.5  # 10 classes; measured 0.92-0.98 over seeds
    params = int(re.search(r"parameters: ([0-9,]+)", stdout).group(1).replace(",", ""))
    assert params == count_parameters(Network(DARTS_V2, 4, 10, 3, in_channels=1))
    saved = json.loads((tmp_path / "train.json").read_text())
    assert saved["params"] == params and saved["test_acc"] == pytest.approx(acc, abs=1e-4)
    assert len(saved["history"]) == 8 and saved["config"]["C"] == 4
    assert saved["space"]["name"] == "darts" and saved["architecture"]["normal"][0] == ["sep_conv_3x3", 0]


def test_other_spaces_search_draw_and_train(tmp_path, capsys):
    out = tmp_path / "nb"
    code, stdout, err = run(capsys, "search", "darts", "--space", "nb201", "--data", "synthetic", "--epochs", "1",
                            "-o", "C=4", "-o", "N=1", "--batch-size", "32", "--out", out, "--no-progress")
    assert code == 0, err
    assert "architecture: |" in stdout and (out / "cell.svg").is_file()
    code, stdout, err = run(capsys, "draw", out, "--out", tmp_path / "svg")
    assert code == 0, err
    assert stdout.split() == [str(tmp_path / "svg" / "nb_cell.svg")]
    code, stdout, err = run(capsys, "train", out, "--data", "synthetic", "--epochs", "2", "--no-progress")
    assert code == 0, err
    assert "network: the NAS-Bench-201 cell network of {'name': 'nb201', 'C': 4, 'N': 1, 'blocks': 'shortcut'}" in stdout
    code, _, err = run(capsys, "train", out, "--data", "synthetic", "--cutout", "4")
    assert code == 2 and "--cutout apply to DARTS cells only" in err
    code, stdout, err = run(capsys, "draw", "--space", "macro", "22212220", "--out", tmp_path / "svg")
    assert code == 0 and stdout.split() == [str(tmp_path / "svg" / "macro_network.svg")], err
    code, _, err = run(capsys, "draw", "--space", "nb201", "|conv~0|")
    assert code == 2 and "an arch string has 3 '+'-separated groups" in err


def test_random_search_on_the_macro_table(tmp_path, capsys):
    code, stdout, err = run(capsys, "search", "random", "--space", "macro", "--benchmark", "nas-bench-macro",
                            "--epochs", "2", "--out", tmp_path / "r", "--no-progress")
    assert code == 0, err
    assert re.search(r"epoch 2/2 .*best_reward 0\.9\d+.*true acc 0\.9", stdout)
    assert (tmp_path / "r" / "network.svg").is_file()


def test_train_bad_genotype_file_exits_2(tmp_path, capsys):
    path = tmp_path / "g.json"
    path.write_text('{"normal": 3}')
    code, _, err = run(capsys, "train", path, "--data", "synthetic")
    assert code == 2 and "lacks field(s)" in err


# ---------------------------------------------------------------------------
# help and version
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv, expected", [
    ([], ["search", "draw", "train", "examples"]),
    (["search"], ["--epochs", "--out", "--C", "supernet width", "--layers", "resumes", "--space", "--benchmark",
                  "-o NAME=VALUE", "examples"]),
    (["draw"], ["--list", "NAME_OR_FILE", "examples"]),
    (["train"], ["--epochs", "test accuracy", "examples"]),
])
def test_help(argv, expected, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in expected:
        assert word in out


def test_version(capsys):
    import nasedu

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"nasedu {nasedu.__version__}"


def test_python_dash_m(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nasedu", "--help"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: nasedu") and "search" in proc.stdout


def test_bench_show_summarises_a_table(capsys):
    code, stdout, _ = run(capsys, "bench", "show", "nb201-digits")
    assert code == 0
    assert "nb201-digits" in stdout and "15,625 architectures (5,425 distinct)" in stdout
    assert "  best: " in stdout and " worst: " in stdout and "CPU-hours" in stdout


def test_bench_build_resumes_and_finish_refuses_an_unfinished_build(tmp_path, capsys, monkeypatch):
    from nasedu import bench_builder

    monkeypatch.setattr(bench_builder, "train_one", lambda task, protocol: {"arch": task[0], "seed": task[1],
                                                                             "seconds": 0.1})
    code, stdout, _ = run(capsys, "bench", "build", str(tmp_path), "--limit", "3", "--workers", "1", "--no-progress")
    assert code == 0 and "3 of 10,850 trainings saved" in stdout
    code, _, err = run(capsys, "bench", "finish", str(tmp_path), str(tmp_path / "table.json.gz"))
    assert code == 2 and "10,847 trainings are missing" in err and "run the build" in err
