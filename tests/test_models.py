"""The models: the fast input-gradient convolution against PyTorch's own, the ResNets, and users' networks."""

import numpy as np
import pytest
import torch
from torch import nn

from bench.models import Conv2d, build_model


@pytest.mark.parametrize("channels, kernel, padding", [(1, 5, 2), (6, 5, 0), (3, 3, 1), (2, (3, 5), (0, 2))])
def test_input_gradient_equals_autograd_through_the_stock_layer(channels, kernel, padding):
    torch.manual_seed(0)
    fast = Conv2d(channels, 4, kernel_size=kernel, padding=padding).requires_grad_(False)
    stock = nn.Conv2d(channels, 4, kernel_size=kernel, padding=padding).requires_grad_(False)
    stock.load_state_dict(fast.state_dict())
    x = torch.rand(8, channels, 12, 12, requires_grad=True)
    weights = torch.randn_like(stock(x))
    expected = torch.autograd.grad((stock(x) * weights).sum(), x)[0]
    actual = torch.autograd.grad((fast(x) * weights).sum(), x)[0]
    assert torch.equal(fast(x), stock(x))
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_training_takes_the_stock_path_bit_for_bit():
    """With parameter gradients wanted, the layer is nn.Conv2d unchanged: same weight gradients."""
    torch.manual_seed(0)
    model = build_model("lenet", (1, 28, 28), 10)
    reference = build_model("lenet", (1, 28, 28), 10)
    reference.load_state_dict(model.state_dict())
    for module in reference.embed:
        if isinstance(module, Conv2d):
            module.__class__ = nn.Conv2d
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    for net in (model, reference):
        nn.functional.cross_entropy(net(x), y).backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p.grad, q.grad), name


NETWORKS = '''
from torch import nn

def small_cnn(input_shape, n_classes):
    channels = input_shape[0]
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                         nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, n_classes))

def with_softmax(input_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, n_classes), nn.Softmax(dim=1))

def no_linear(input_shape, n_classes):
    return nn.Sequential(nn.Conv2d(input_shape[0], n_classes, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())

not_a_function = 3
'''


@pytest.fixture
def networks(tmp_path):
    path = tmp_path / "networks.py"
    path.write_text(NETWORKS)
    return path


def test_any_module_ending_in_a_linear_layer_is_split_into_embedding_and_head(networks):
    model = build_model(f"{networks}:small_cnn", (3, 32, 32), 5).eval()
    x = torch.rand(6, 3, 32, 32)
    torch.testing.assert_close(model.head(model.embed(x)), model(x))
    inputs = []
    model.head.register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
    model(x)
    torch.testing.assert_close(model.embed(x), inputs[0])  # the embedding is the head's input
    assert model.embed(x).shape == (6, 16)
    assert sum(key.endswith("weight") for key in model.state_dict()) == 3  # the head is stored once


@pytest.mark.parametrize("name, message", [
    ("with_softmax", "its output is not the output of its last nn.Linear"),
    ("no_linear", "has no nn.Linear layer"),
    ("not_a_function", "not_a_function is not callable"),
    ("missing", "could not be loaded (AttributeError"),
])
def test_models_the_harness_cannot_split_are_refused_with_what_it_needs(networks, name, message):
    from bench.errors import BenchError

    with pytest.raises(BenchError, match=message.replace("(", r"\(")):
        build_model(f"{networks}:{name}", (3, 32, 32), 5)
    with pytest.raises(BenchError, match=r"unknown model 'resnet-50'; did you mean resnet20 or resnet18 .*known: lenet, mlp"):
        build_model("resnet-50", (3, 32, 32), 5)


@pytest.mark.slow
def test_a_users_network_trains_and_is_probed_end_to_end(networks, tmp_path):
    from bench.cli import main
    from bench.leaderboard import read_csv

    out = tmp_path / "out"
    assert main(["run", "--dataset", "patches", "--ood", "textures", "--model", f"{networks}:small_cnn",
                 "--scorers", "loss,vog,oga,grand,gaussian", "--seeds", "1", "--epochs", "2", "--out", str(out),
                 "--no-progress"]) == 0
    board = read_csv(out / "leaderboard.csv")
    aurocs = board[(board.task == "ood") & (board.metric == "auroc") & (board.seed == "0") & (board.split == "textures")]
    assert len(aurocs) == 5 and aurocs.value.notna().all()


def test_models_from_other_packages_come_through_their_entry_points(tmp_path):
    import os
    import subprocess
    import sys

    dist = tmp_path / "tiny_models-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-models\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[bench.models]\ntiny = tiny_models:tiny\n")
    (tmp_path / "tiny_models.py").write_text(
        "from torch import nn\ndef tiny(input_shape, n_classes):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, n_classes))\n")
    script = ("from bench.models import available_models, build_model\n"
              "print(available_models(), build_model('tiny', (4,), 2).head.out_features)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "['lenet', 'mlp', 'poolnet', 'resnet18', 'resnet20', 'tiny'] 2" in result.stdout


def test_the_cifar_networks_have_their_parameter_counts_by_hand():
    """ResNet-20 (option A shortcuts have no parameters), the CIFAR ResNet-18 and poolnet (a 2x2 stem with a bias, then
    three stages of two 3x3 convolutions with batch norm), counted layer by layer."""
    conv = lambda c_in, c_out, k=3: c_in * c_out * k * k  # noqa: E731 (no bias: batch norm follows)
    bn = lambda c: 2 * c  # noqa: E731
    resnet20 = conv(3, 16) + bn(16) + sum(
        conv(c_in, c) + bn(c) + conv(c, c) + bn(c)
        for c_in, c in [(16, 16)] * 3 + [(16, 32)] + [(32, 32)] * 2 + [(32, 64)] + [(64, 64)] * 2) + 64 * 10 + 10
    resnet18 = conv(3, 64) + bn(64) + sum(
        conv(c_in, c) + bn(c) + conv(c, c) + bn(c) + (conv(c_in, c, 1) + bn(c) if c != c_in else 0)
        for c_in, c in [(64, 64)] * 2 + [(64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
    ) + 512 * 10 + 10
    poolnet = conv(3, 24, 2) + 24 + sum(conv(c_in, c) + bn(c) + conv(c, c) + bn(c)
                                        for c_in, c in [(24, 64), (64, 128), (128, 128)]) + 128 * 10 + 10
    assert (resnet20, resnet18, poolnet) == (269_722, 11_173_962, 569_666)  # the counts quoted for these networks
    for name, expected, embedding in (("resnet20", resnet20, 64), ("resnet18", resnet18, 512), ("poolnet", poolnet, 128)):
        model = build_model(name, (3, 32, 32), 10)
        assert sum(p.numel() for p in model.parameters()) == expected
        assert model.eval().embed(torch.rand(2, 3, 32, 32)).shape == (2, embedding)


@pytest.mark.slow
def test_a_resnet_with_batch_norm_is_probed_with_examples_independent(tmp_path):
    """In the probe the network is in eval mode: an example's scores do not depend on its batch."""
    from bench.probe import Probe, ProbeSplit
    from bench import registry
    from bench.api import Checkpoint

    torch.manual_seed(0)
    model = build_model("resnet20", (3, 16, 16), 3)
    model.train()
    model(torch.rand(32, 3, 16, 16))  # running statistics that differ from a batch's own
    x, y = torch.rand(10, 3, 16, 16), torch.randint(0, 3, (10,))
    first = {k: v.clone() for k, v in model.state_dict().items()}
    second = {k: v * 1.01 if v.is_floating_point() else v.clone() for k, v in first.items()}  # VoG reads two or more
    states = [(Checkpoint(index=0, epoch=1, total=2), first), (Checkpoint(index=1, epoch=2, total=2), second)]
    scores = {}
    for size in (10, 3):
        probe = Probe({"train": ProbeSplit(x, y, trusted_labels=True)}, [registry.create("vog[window=all]"),
                      registry.create("grand")], (3, 16, 16), batch_size=size)
        scores[size] = probe.run(model, states)["train"]
    for spec in ("vog[window=all]", "grand"):
        np.testing.assert_allclose(scores[10][spec], scores[3][spec], rtol=1e-5)


def test_channel_statistics_are_those_numpy_computes_on_the_model_scale():
    from bench.data.arrays import from_arrays

    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (5000, 3, 4, 4)).astype(np.uint8)
    colour[:, 2] //= 4  # a darker, narrower third channel
    gray = rng.random((300, 5, 5)).astype(np.float32)
    for images, scale in ((colour, 255.0), (gray, 1.0)):
        dataset = from_arrays("t", images, np.zeros(len(images), int), images[:10], np.zeros(10, int))
        mean, std = dataset.channel_statistics()
        axes = (0, 2, 3) if images.ndim == 4 else None
        np.testing.assert_allclose(mean, np.atleast_1d((images.astype(np.float64) / scale).mean(axis=axes)), rtol=1e-12)
        np.testing.assert_allclose(std, np.atleast_1d((images.astype(np.float64) / scale).std(axis=axes)), rtol=1e-9)


def test_a_normalized_model_standardises_its_input_and_its_gradients_stay_in_pixel_space():
    torch.manual_seed(0)
    mean, std = [0.5, 0.4, 0.3], [0.25, 0.2, 0.1]
    inner = build_model("resnet20", (3, 8, 8), 4).eval()
    model = build_model("resnet20", (3, 8, 8), 4, (mean, std)).eval()
    model.model.load_state_dict(inner.state_dict())
    x = torch.rand(3, 3, 8, 8, requires_grad=True)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    standardised = ((x - m) / s).detach().requires_grad_(True)
    torch.testing.assert_close(model(x), inner(standardised))
    torch.testing.assert_close(model.head(model.embed(x)), model(x))
    model(x)[:, 0].sum().backward()
    inner(standardised)[:, 0].sum().backward()
    torch.testing.assert_close(x.grad, standardised.grad / s)  # the chain rule: d/dx = d/dz / std
    assert model.head is model.model.head and len(list(model.parameters())) == len(list(inner.parameters()))


def test_poolnet_takes_32x32_images_only():
    from bench.errors import BenchError

    with pytest.raises(BenchError, match=r"poolnet takes 32x32 images \(channels, 32, 32\), got inputs of shape \(1, 28, 28\)"):
        build_model("poolnet", (1, 28, 28), 10)
