"""The official VoG toy script's width, one hidden layer of 10 units (with ReLU here), as a model file:
`bench run --preset toy-boundary --model examples/toy_mlp.py:ten_units`."""

from bench.models import MLP


def ten_units(input_shape, n_classes):
    return MLP(input_shape, n_classes, hidden=(10,))
