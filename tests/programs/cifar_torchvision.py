"""A typical CIFAR-10 training script written for PyTorch and torchvision: per-sample
torchvision transforms on PIL images, torchvision.datasets.CIFAR10 from its
cifar-10-batches-py folder, a DataLoader with workers, a small CNN, SGD, then an
evaluation pass, a torchvision ResNet-18 forward and a saved image grid.

    python -m kiln.run cifar_torchvision.py ROOT [--steps 2]

ROOT holds cifar-10-batches-py. Prints ``loss <value>`` per training step, then
``accuracy <percent>``, ``resnet18 <shape>`` and ``grid <path>``.
"""

import argparse
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torchvision
import torchvision.transforms as transforms


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)

    transform_train = transforms.Compose([
        transforms.RandomCrop(32, padding=4),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    ])
    transform_test = transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    ])
    trainset = torchvision.datasets.CIFAR10(root=args.root, train=True, download=True,
                                            transform=transform_train)
    trainloader = torch.utils.data.DataLoader(trainset, batch_size=8, shuffle=True,
                                              num_workers=2)
    testset = torchvision.datasets.CIFAR10(root=args.root, train=False, download=True,
                                           transform=transform_test)
    testloader = torch.utils.data.DataLoader(testset, batch_size=8, shuffle=False,
                                             num_workers=2)
    classes = trainset.classes

    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = Net().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    net.train()
    for step, (inputs, targets) in enumerate(trainloader):
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()
        print(f"loss {loss.item():.6f}")
        if step + 1 == args.steps:
            break

    net.eval()
    correct = total = 0
    with torch.no_grad():
        for inputs, targets in testloader:
            outputs = net(inputs.to(device))
            _, predicted = outputs.max(1)
            total += targets.size(0)
            correct += predicted.eq(targets.to(device)).sum().item()
    print(f"accuracy {100.0 * correct / total:.2f} of {total} in {len(classes)} classes")

    model = torchvision.models.resnet18(weights=None, num_classes=len(classes))
    model.eval()
    with torch.no_grad():
        print("resnet18", tuple(model(inputs[:2]).shape))

    path = os.path.join(args.root, "batch.png")
    torchvision.utils.save_image(inputs[:4], path, nrow=2, normalize=True)
    print("grid", os.path.basename(path))


if __name__ == "__main__":
    main()
