"""Bad input to `bench run`: each gets a message that names the problem and the fix, and loses nothing finished."""

import numpy as np
import pytest
from test_data import write_idx_folder

from bench.data.digits import load_digits_c
from bench.cli import main
from bench.leaderboard import read_csv
from bench.store import ScoreTable, load_checkpoints

pytestmark = pytest.mark.slow  # each test runs `bench run` end to end

VALUES = ["task", "scorer", "split", "seed", "metric", "value", "note"]
RUN = ["run", "--dataset", "digits-c", "--model", "mlp", "--seeds", "1", "--epochs", "3", "--no-progress"]

NON_FINITE_PLUGIN = '''
import numpy as np
from bench.api import LOGITS, StreamingScorer, register

@register
class Overflowing(StreamingScorer):
    name, family, reference = "overflowing", "test", "-"
    needs = frozenset({LOGITS})
    def start(self, split, size): self.size = getattr(self, "size", {}) | {split: size}
    def update(self, batch, checkpoint): pass
    def scores(self, split): return np.r_[np.inf, np.nan, np.zeros(self.size[split] - 2)]
'''


def test_a_scorer_returning_nan_or_inf_gets_nan_metrics_with_the_reason(tmp_path, isolated_registry):
    plugin = tmp_path / "overflowing.py"
    plugin.write_text(NON_FINITE_PLUGIN)
    out = tmp_path / "out"
    assert main([*RUN, "--scorers", "loss,overflowing", "--plugin", str(plugin), "--out", str(out)]) == 0
    board = read_csv(out / "leaderboard.csv")
    bad, good = board[board.scorer == "overflowing"], board[(board.scorer == "loss") & (board.metric == "auroc")]
    ood = bad[(bad.task == "ood") & (bad.metric == "auroc")]
    assert len(ood) and ood.value.isna().all() and ood.note.str.contains("NaN or infinite").all()
    assert good.value.notna().all()
    [unit] = (out / "units").glob("*.npz")
    assert np.isinf(ScoreTable.load(unit).splits["test"]["overflowing"][0])  # the scores are kept as returned


def test_damaged_unit_and_checkpoint_files_are_computed_again_with_a_warning(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*RUN, "--scorers", "loss,vog", "--out", str(out)]) == 0
    before = read_csv(out / "leaderboard.csv")
    [unit_file], [checkpoints] = (out / "units").glob("*.npz"), (out / "checkpoints").glob("*.npz")
    scores = ScoreTable.load(unit_file)
    for damaged in (unit_file, checkpoints):
        damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # as a full disk would leave it
    capsys.readouterr()
    assert main([*RUN, "--scorers", "loss,vog", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {unit_file} is damaged (BadZipFile" in err and f"warning: {checkpoints} is damaged" in err
    again = ScoreTable.load(unit_file)
    for split, columns in scores.splits.items():
        for column, values in columns.items():
            assert values.tobytes() == again.splits[split][column].tobytes()
    assert load_checkpoints(checkpoints)[1]["checkpoint_epochs"] == [1, 2, 3]
    assert read_csv(out / "leaderboard.csv")[VALUES].equals(before[VALUES])


def test_bad_input_to_a_finished_folder_leaves_its_results_intact(tmp_path, capsys, isolated_registry):
    out = tmp_path / "out"
    assert main([*RUN, "--scorers", "loss", "--out", str(out)]) == 0
    files = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    digits = load_digits_c()
    truncated, flat = tmp_path / "truncated", tmp_path / "flat"
    write_idx_folder(truncated, digits.train.inputs, digits.train.labels, digits.test.inputs, digits.test.labels)
    labels = truncated / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-10])
    write_idx_folder(flat, digits.train.inputs.reshape(len(digits.train.inputs), -1), digits.train.labels,
                     digits.test.inputs, digits.test.labels)
    (tmp_path / "study.toml").write_text('label_mode = "oracle"\n')
    (tmp_path / "broken.py").write_text("raise ImportError('needs a package that is not installed')\n")
    for bad, message in ((["--scorers", "los"], "did you mean loss"),
                         (["--scorers", "loss", "--label-noise", "1.5"], "'label_noise' is 1.5; it must be in [0, 1)"),
                         (["--scorers", "loss", "--dataset", "digits"], "did you mean digits-c"),
                         (["--scorers", "loss", "--dataset", f"idx:{truncated}"], "damaged gzip"),
                         (["--scorers", "loss", "--dataset", f"idx:{flat}"], "images must be (n, height, width)"),
                         (["--config", str(tmp_path / "study.toml")], "'label_mode' is 'oracle'; allowed: predicted, true"),
                         (["--plugin", str(tmp_path / "broken.py")], "could not be imported (ImportError at line 1")):
        assert main([*RUN, *bad, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == files


def test_a_results_folder_that_cannot_be_written_is_named_with_the_fix(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main([*RUN, "--scorers", "loss", "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert f"results folder {blocker / 'out'} is not writable" in err and "pass --out with a folder you can write" in err
