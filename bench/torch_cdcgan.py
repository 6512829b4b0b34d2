#!/usr/bin/env python3
"""PyTorch reference of anygan's cdcgan-28 and its training step, for side-by-side throughput.

The model and step follow ../shared/BENCHMARK.md exactly as anygan implements them
(worker/src/gan/model.rs, worker/src/gan/train.rs): label → Embedding(C, 50) → Linear → one
extra channel in both networks; Adam lr 2e-4, betas (0.5, 0.999), eps 1e-8; N(0, 0.02) init;
one step = D update on a real batch (target 1) and a generated batch (target 0, generator
detached), then a G update with fresh noise and labels through the updated D.

    python3 bench/torch_cdcgan.py --widths 128 --batches 64,256 [--device cuda] [--steps 20]
        [--cudnn-benchmark off,on]

prints a markdown table like `cargo bench --bench train_step`: median step time, images/s and
peak device memory (CUDA) for each width, batch and cuDNN autotuning setting (`on` lets cuDNN
time its convolution algorithms at the first step of each shape, as anygan's backend autotunes).
"""

import argparse
import statistics
import time

import torch
from torch import nn

LABEL_EMBEDDING = 50


class Generator(nn.Module):
    def __init__(self, classes, width, latent=100, channels=1, size=28):
        super().__init__()
        self.base = size // 4
        self.width = width
        self.label_embedding = nn.Embedding(classes, LABEL_EMBEDDING)
        self.label_projection = nn.Linear(LABEL_EMBEDDING, self.base * self.base)
        self.noise_projection = nn.Linear(latent, width * self.base * self.base)
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(width + 1, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(width, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
        )
        self.output = nn.Conv2d(width, channels, 7, padding=3)

    def forward(self, noise, labels):
        n = noise.shape[0]
        label = self.label_projection(self.label_embedding(labels)).view(n, 1, self.base, self.base)
        x = nn.functional.leaky_relu(self.noise_projection(noise), 0.2)
        x = x.view(n, self.width, self.base, self.base)
        return torch.tanh(self.output(self.upsample(torch.cat([x, label], 1))))


class Discriminator(nn.Module):
    def __init__(self, classes, width, channels=1, size=28, dropout=0.4):
        super().__init__()
        self.size = size
        self.label_embedding = nn.Embedding(classes, LABEL_EMBEDDING)
        self.label_projection = nn.Linear(LABEL_EMBEDDING, size * size)
        self.features = nn.Sequential(
            nn.Conv2d(channels + 1, width, 3, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, 2, 1),
            nn.LeakyReLU(0.2),
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width * (size // 4) ** 2, 1)

    def forward(self, images, labels):
        n = images.shape[0]
        label = self.label_projection(self.label_embedding(labels)).view(n, 1, self.size, self.size)
        x = self.features(torch.cat([images, label], 1)).flatten(1)
        return self.classifier(self.dropout(x))


def dcgan_init(module):
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.normal_(p, 0.0, 0.02)
        else:
            nn.init.zeros_(p)


def train_step(g, d, g_opt, d_opt, real, labels, latent, classes):
    n = real.shape[0]
    device = real.device
    bce = nn.functional.binary_cross_entropy_with_logits
    ones = torch.ones(n, 1, device=device)
    zeros = torch.zeros(n, 1, device=device)

    with torch.no_grad():
        fake = g(torch.randn(n, latent, device=device), torch.randint(0, classes, (n,), device=device))
    fake_labels = torch.randint(0, classes, (n,), device=device)
    d_loss = bce(d(real, labels), ones) + bce(d(fake, fake_labels), zeros)
    d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    d_opt.step()

    g_labels = torch.randint(0, classes, (n,), device=device)
    for p in d.parameters():
        p.requires_grad_(False)
    g_loss = bce(d(g(torch.randn(n, latent, device=device), g_labels), g_labels), ones)
    g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    g_opt.step()
    for p in d.parameters():
        p.requires_grad_(True)
    return d_loss.item(), g_loss.item()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--widths", default="128")
    parser.add_argument("--batches", default="64,256")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--cudnn-benchmark", default="off")
    args = parser.parse_args()
    device = torch.device(args.device)
    classes, latent = 10, 100
    print(f"PyTorch {torch.__version__} cdcgan-28 training step on {device}")
    print("| width | batch | cuDNN autotune | median step (ms) | images/s | peak memory (MiB) |")
    print("|---|---|---|---|---|---|")
    runs = [
        (int(width), int(batch), setting == "on")
        for width in args.widths.split(",")
        for batch in args.batches.split(",")
        for setting in args.cudnn_benchmark.split(",")
    ]
    for width, batch, autotune in runs:
        torch.backends.cudnn.benchmark = autotune
        torch.manual_seed(0)
        g = Generator(classes, width).to(device)
        d = Discriminator(classes, width).to(device)
        dcgan_init(g)
        dcgan_init(d)
        adam = dict(lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
        g_opt = torch.optim.Adam(g.parameters(), **adam)
        d_opt = torch.optim.Adam(d.parameters(), **adam)
        real = torch.rand(batch, 1, 28, 28, device=device) * 2 - 1
        labels = torch.arange(batch, device=device) % classes
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for step in range(args.warmup + args.steps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            d_loss, g_loss = train_step(g, d, g_opt, d_opt, real, labels, latent, classes)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step >= args.warmup:
                times.append(time.perf_counter() - started)
            assert d_loss == d_loss and g_loss == g_loss, "losses must be finite"
        median = statistics.median(times)
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
        setting = "on" if autotune else "off"
        print(f"| {width} | {batch} | {setting} | {median * 1e3:.2f} | {batch / median:.0f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
