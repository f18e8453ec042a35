"""A PyTorch-style program: train one epoch, save a checkpoint dict (model, optimizer
and scheduler state, epoch, best accuracy) with torch.save, rebuild model and
optimizer, torch.load the checkpoint and train on from it (float64).

Usage: checkpoint_resume.py CHECKPOINT_PATH. Prints ``loss <value>`` per step and the
restored epoch and best accuracy.
"""

import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def build(device):
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 2)).double().to(device)
    rng = np.random.RandomState(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)) * 0.5))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    return model, optimizer, scheduler


def train_epoch(model, optimizer, scheduler, loader):
    model.train()
    for images, labels in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        print(f"loss {loss.item()!r}")
    scheduler.step()


def accuracy(model, loader):
    model.eval()
    with torch.no_grad():
        hits = sum((model(x).argmax(dim=1) == y).sum().item() for x, y in loader)
    return 100.0 * hits / len(loader.dataset)


def main():
    path = sys.argv[1]
    device = torch.device("cpu")
    rng = np.random.RandomState(2)
    images = torch.from_numpy(rng.standard_normal((24, 1, 6, 6)))
    labels = torch.from_numpy(rng.randint(0, 2, 24))
    loader = DataLoader(TensorDataset(images, labels), batch_size=6, shuffle=False)
    model, optimizer, scheduler = build(device)
    train_epoch(model, optimizer, scheduler, loader)
    state = {"epoch": 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "best_acc": accuracy(model, loader)}
    torch.save(state, path)

    model, optimizer, scheduler = build(device)
    checkpoint = torch.load(path, map_location=device)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    print(f"resumed epoch {checkpoint['epoch']} best {checkpoint['best_acc']!r}")
    for _ in range(checkpoint["epoch"] + 1, 4):
        train_epoch(model, optimizer, scheduler, loader)
    print(f"lr {optimizer.param_groups[0]['lr']!r}")


if __name__ == "__main__":
    main()
