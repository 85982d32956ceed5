"""The models' fast input-gradient convolution against PyTorch's own convolution backward."""

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
