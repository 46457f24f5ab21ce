"""Writers of small data files in the exact on-disk formats of MNIST (IDX), CIFAR (python pickles)
and the TIMIT frame file (``.npz``).

Written from the format descriptions, independently of torchvision:

* IDX (LeCun's MNIST page): big-endian header ``0x00000803`` (unsigned bytes,
  3 dimensions) then the counts ``N, 28, 28`` for images; ``0x00000801`` and
  ``N`` for labels; then the bytes.
* CIFAR (Krizhevsky's page): each batch is a pickled dict with ``data`` a
  ``uint8`` array ``[N, 3072]`` (1024 red, then 1024 green, then 1024 blue
  values, rows of 32) and ``labels`` (CIFAR-10) or ``fine_labels`` /
  ``coarse_labels`` (CIFAR-100); ``batches.meta`` / ``meta`` hold the label names.
* TIMIT frames (the ``timit_frames`` data set's documented layout): ``numpy.savez`` with
  ``train_x`` ``[N, 360]`` floats, ``train_y`` ``[N]`` ints, ``test_x`` and ``test_y`` likewise.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

MNIST_NAMES = {
    (True, "images"): "train-images-idx3-ubyte",
    (True, "labels"): "train-labels-idx1-ubyte",
    (False, "images"): "t10k-images-idx3-ubyte",
    (False, "labels"): "t10k-labels-idx1-ubyte",
}


def idx_images_bytes(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return struct.pack(">IIII", 0x00000803, n, h, w) + images.astype(np.uint8).tobytes()


def idx_labels_bytes(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()


def write_mnist(
    root: Path, n_train: int, n_test: int, *, seed: int = 0, gz: bool = True
) -> dict[str, np.ndarray]:
    """Write ``root/MNIST/raw/*`` (only ``.gz`` files when ``gz``); return the arrays written."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out = {}
    for train, n in ((True, n_train), (False, n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, payload in (("images", idx_images_bytes(images)), ("labels", idx_labels_bytes(labels))):
            name = MNIST_NAMES[(train, kind)]
            if gz:
                with gzip.open(raw / (name + ".gz"), "wb") as f:
                    f.write(payload)
            else:
                (raw / name).write_bytes(payload)
        split = "train" if train else "test"
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels
    return out


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: Path, per_batch: int, n_test: int, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``root/cifar-10-batches-py/`` (5 train batches of ``per_batch``); return the arrays."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_data, train_labels = [], []
    for b in range(1, 6):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        _dump(
            folder / f"data_batch_{b}",
            {
                "batch_label": f"training batch {b} of 5",
                "labels": labels,
                "data": data,
                "filenames": [f"img_{b}_{i}.png" for i in range(per_batch)],
            },
        )
        train_data.append(data)
        train_labels += labels
    test_data = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    test_labels = rng.integers(0, 10, size=n_test).tolist()
    _dump(
        folder / "test_batch",
        {
            "batch_label": "testing batch 1 of 1",
            "labels": test_labels,
            "data": test_data,
            "filenames": [f"test_{i}.png" for i in range(n_test)],
        },
    )
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _dump(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072})
    return {
        "train_data": np.concatenate(train_data),
        "train_labels": np.array(train_labels),
        "test_data": test_data,
        "test_labels": np.array(test_labels),
    }


def write_cifar100(root: Path, n_train: int, n_test: int, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``root/cifar-100-python/{train,test,meta}``; return the arrays."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, size=n).tolist()
        coarse = [f // 5 for f in fine]
        _dump(
            folder / split,
            {
                "filenames": [f"{split}_{i}.png" for i in range(n)],
                "batch_label": split,
                "fine_labels": fine,
                "coarse_labels": coarse,
                "data": data,
            },
        )
        out[f"{split}_data"], out[f"{split}_labels"] = data, np.array(fine)
    _dump(
        folder / "meta",
        {
            "fine_label_names": [f"fine{i}" for i in range(100)],
            "coarse_label_names": [f"coarse{i}" for i in range(20)],
        },
    )
    return out


def cifar_rows_to_images(data: np.ndarray) -> np.ndarray:
    """``[N, 3072]`` rows → ``[N, 3, 32, 32]`` by the documented layout (explicit loops over channels)."""
    out = np.empty((len(data), 3, 32, 32), dtype=np.uint8)
    for c in range(3):
        plane = data[:, c * 1024 : (c + 1) * 1024]
        for r in range(32):
            out[:, c, r, :] = plane[:, r * 32 : (r + 1) * 32]
    return out


def write_timit_frames(
    path: Path,
    n_train: int = 300,
    n_test: int = 100,
    features: int = 360,
    classes: int = 1973,
    seed: int = 0,
    **extra,
) -> dict[str, np.ndarray]:
    """Write a frame file at ``path`` (``extra`` arrays are added as they are); return the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.normal(2.0, 3.0, size=(n_train, features)).astype(np.float32),
        "train_y": rng.integers(0, classes, size=n_train),
        "test_x": rng.normal(2.0, 3.0, size=(n_test, features)).astype(np.float32),
        "test_y": rng.integers(0, classes, size=n_test),
    }
    arrays.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays
