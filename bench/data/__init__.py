"""Datasets as the harness sees them: what one is (``bench.data.dataset``), and how one is found by
name (``bench.data.registry``); the loaders of the built-in datasets and formats are the other
modules here. This package only hands those names on: no module in it imports it.
"""

from bench.data.dataset import (Dataset, Split, copies_of, data_roots, to_channels, with_corrupted_size, with_label_noise,
                                with_semantic_ood, with_train_size, with_training_set, without_in_distribution_copies)
from bench.data.registry import (available_datasets, corruption_names, dataset_caveat, load_dataset,
                                 with_corruptions_only)

__all__ = ["Dataset", "Split", "available_datasets", "copies_of", "corruption_names", "data_roots", "dataset_caveat",
           "load_dataset", "to_channels", "with_corrupted_size", "with_corruptions_only", "with_label_noise", "with_semantic_ood",
           "with_train_size", "with_training_set", "without_in_distribution_copies"]
