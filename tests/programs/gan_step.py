"""A PyTorch-style program: a few steps of a GAN on 2-D points (DCGAN's recipe:
BCELoss, Adam with betas (0.5, 0.999), real/fake labels, ``fake.detach()`` for the
discriminator's step), in float32.

Prints ``loss <D> <G>`` per step.
"""

import numpy as np
import torch
import torch.nn as nn


def init(module, rng):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32)
                                     * 0.5))


def main():
    torch.manual_seed(0)
    rng = np.random.RandomState(0)
    netG = nn.Sequential(nn.Linear(4, 16), nn.ReLU(True), nn.Linear(16, 2), nn.Tanh())
    netD = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2, inplace=True), nn.Linear(16, 1),
                         nn.Sigmoid())
    init(netG, rng)
    init(netD, rng)
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-3, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-3, betas=(0.5, 0.999))
    real_label, fake_label = 1.0, 0.0
    for _ in range(6):
        real = torch.from_numpy((rng.standard_normal((8, 2)) * 0.1 + 0.5).astype(np.float32))
        noise = torch.from_numpy(rng.standard_normal((8, 4)).astype(np.float32))
        netD.zero_grad()
        label = torch.full((8,), real_label, dtype=torch.float)
        errD_real = criterion(netD(real).view(-1), label)
        errD_real.backward()
        fake = netG(noise)
        label.fill_(fake_label)
        errD_fake = criterion(netD(fake.detach()).view(-1), label)
        errD_fake.backward()
        optimizerD.step()
        netG.zero_grad()
        label.fill_(real_label)
        errG = criterion(netD(fake).view(-1), label)
        errG.backward()
        optimizerG.step()
        print(f"loss {(errD_real + errD_fake).item()!r} {errG.item()!r}")


if __name__ == "__main__":
    main()
