"""A PyTorch-style program: a custom Dataset of dict samples, a custom Sampler and
collate_fn, a DataLoader with workers, a small CNN trained with SGD in float64.

Prints one ``loss <value>`` line per step and the final accuracy; run it with
``python`` (real PyTorch) or ``kiln run`` and the lines must agree.
"""

import argparse

import numpy as np
import torch
import torch.backends.cudnn as cudnn
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate


class Blobs(Dataset):
    def __init__(self, n, seed):
        rng = np.random.RandomState(seed)
        self.labels = rng.randint(0, 3, n)
        self.images = rng.standard_normal((n, 1, 8, 8)) + self.labels[:, None, None, None]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"image": self.images[index], "label": int(self.labels[index]),
                "name": f"blob{index}"}


class EvensThenOdds(Sampler):
    def __init__(self, data):
        self.n = len(data)

    def __iter__(self):
        return iter(list(range(0, self.n, 2)) + list(range(1, self.n, 2)))

    def __len__(self):
        return self.n


def collate(samples):
    batch = default_collate(samples)
    return batch["image"], batch["label"], batch["name"]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.fc(x.view(x.size(0), -1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cudnn.benchmark = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = Blobs(40, seed=1)
    loader = DataLoader(data, batch_size=8, sampler=EvensThenOdds(data), collate_fn=collate,
                        num_workers=args.workers, pin_memory=True)
    model = Net().double().to(device)
    rng = np.random.RandomState(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)) * 0.3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(args.epochs):
        model.train()
        for images, labels, names in loader:
            assert len(names) == labels.size(0) == images.size(0)
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            print(f"loss {loss.item()!r}")
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels, _ in DataLoader(data, batch_size=16, collate_fn=collate):
            correct += (model(images).argmax(1) == labels).sum().item()
    print(f"accuracy {correct / len(data)!r}")


if __name__ == "__main__":
    main()
