"""What a new user tripped on at the command line, each test named after what broke."""

import pytest

from bench.cli import main


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_learning_rate_of_nan_or_inf_is_refused_before_anything_is_written(tmp_path, capsys, value):
    """`--lr nan` and `--lr inf` were accepted: the run trained on NaN weights and wrote a leaderboard."""
    out = tmp_path / "out"
    assert main(["run", "--dataset", "two-blobs", "--model", "mlp", "--scorers", "loss", "--seeds", "1", "--epochs", "1",
                 f"--lr={value}", "--out", str(out), "--no-progress"]) == 2
    assert f"config key 'lr' is {float(value)}; it must be a finite number" in capsys.readouterr().err
    assert not out.exists()


def test_a_label_noise_of_nan_in_a_config_file_is_refused(tmp_path, capsys):
    config = tmp_path / "study.toml"
    config.write_text("label_noise = nan\n")
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "'label_noise' is nan; it must be a finite number" in capsys.readouterr().err


def test_ctrl_c_during_data_generation_is_one_line_and_leaves_no_half_built_folder(tmp_path, capsys, monkeypatch):
    """Ctrl-C while the corruptions of a dataset were being generated gave a traceback."""
    import numpy as np
    from test_data import write_idx_folder

    from bench.data import corrupted

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), np.arange(20, dtype=np.uint8) % 10
    write_idx_folder(tmp_path / "tiny", images, labels, images, labels)
    made = []

    def interrupted(inputs, corruption, seed):
        if made:
            raise KeyboardInterrupt
        made.append(corruption)
        return inputs

    monkeypatch.setattr(corrupted, "corrupt", interrupted)
    data = tmp_path / "data"
    assert main(["data", "build", f"idx:{tmp_path / 'tiny'}", "--data-dir", str(data)]) == 130
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("bench: interrupted;") and "Traceback" not in err
    assert made and not [path for path in data.rglob("*") if path.is_dir()]  # nothing half-built was kept
