"""PyTorch's basic MNIST example, shortened to a few steps: torchvision.datasets.MNIST
with ToTensor and Normalize, a CNN with dropout and log_softmax, Adadelta with StepLR,
an evaluation pass with nll_loss(reduction='sum') and argmax/eq/view_as.

    python -m kiln.run mnist_torchvision.py ROOT [--steps 2]

ROOT holds MNIST/raw. Prints ``loss <value>`` per step, then ``test <loss> <correct>``.
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torchvision import datasets, transforms


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(2304, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(1)
    transform = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize((0.1307,), (0.3081,))])
    dataset = datasets.MNIST(args.root, train=False, download=True, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True)
    model = Net()
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)

    model.train()
    for batch_idx, (data, target) in enumerate(loader):
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
        print(f"loss {loss.item():.6f}")
        if batch_idx + 1 == args.steps:
            break
    scheduler.step()

    model.eval()
    test_loss = correct = 0
    with torch.no_grad():
        for data, target in torch.utils.data.DataLoader(dataset, batch_size=8):
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    print(f"test {test_loss / len(dataset):.4f} {correct}")


if __name__ == "__main__":
    main()
