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
