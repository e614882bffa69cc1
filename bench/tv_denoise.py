"""Batched torch TV denoising against the paper's per-image skimage call, on the same batches.

  rgb      40 images 3x227x227: crops of scikit-image's sample photos, resized, plus N(0, 0.06)
           noise (a canvas after an ascent step)
  gray     40 Fashion-MNIST test images 1x28x28 plus the same noise (synthetic blobs when the
           IDX files are not found)
  skimage  the paper's step: skimage.restoration.denoise_tv_bregman(255 * image, weight,
           max_num_iter=100, eps=1e-3), one call per image (HWC, float32)
  torch    facetviz's step: tv_denoise(batch, bregman_strength(weight), iterations), one call
           for the whole batch (float32)

The iteration count is calibrated first (untimed): the smallest of 5, 10, 15, 20, 30, 50, 100,
200 whose mean absolute difference to skimage's result is within 5% of the smallest found.
The mean absolute difference is printed for the whole image and for its interior (2 px in:
skimage holds a frame of input pixels fixed, tv_denoise uses a Neumann boundary), on the [0, 1]
scale, with the distance of that many iterations from tv_denoise's own converged result (200).
Timings alternate (torch, skimage, torch, ...) so that drifting machine load hits both alike;
ratio = median skimage seconds / median torch seconds (> 1: torch is faster).
Nothing is written.

    .venv/bin/python bench/tv_denoise.py --weights 0.1 0.4 2.0 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from machine import load_average  # bench/machine.py: scripts run as bench/<name>.py

REPO = Path(__file__).resolve().parents[1]
CANDIDATE_ITERATIONS = (5, 10, 15, 20, 30, 50, 100, 200)
NOISE = 0.06
PAPER = {"max_num_iter": 100, "eps": 1e-3}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--weights",
        type=float,
        nargs="+",
        default=[0.1, 0.4, 2.0],
        help="denoise_tv_bregman weights, on the paper's 0-255 scale (default 0.1 0.4 2.0)",
    )
    parser.add_argument("--images", type=int, default=40, help="images per batch (default 40)")
    parser.add_argument("--repeats", type=int, default=3, help="timings of each kind")
    parser.add_argument(
        "--iterations", type=int, default=None, help="tv_denoise iterations (default: calibrated)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's default)"
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    args = parser.parse_args()
    if args.images < 1 or args.repeats < 1 or min(args.weights) <= 0:
        parser.error("--images and --repeats must be positive, and --weights > 0")
    return args


def rgb_images(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """[n, 3, size, size] float32 in [0, 1]: random crops of skimage's sample photos, noisy."""
    from skimage import data, transform

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        photo = photos[i % len(photos)]
        side = int(rng.integers(size, min(photo.shape[:2]) + 1))
        top = int(rng.integers(0, photo.shape[0] - side + 1))
        left = int(rng.integers(0, photo.shape[1] - side + 1))
        crop = transform.resize(photo[top : top + side, left : left + side], (size, size))
        out[i] = crop.transpose(2, 0, 1)
    return np.clip(out + rng.normal(0, NOISE, out.shape), 0, 1).astype(np.float32)


def gray_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """[n, 1, 28, 28] float32 in [0, 1]: Fashion-MNIST test images (or blobs), noisy."""
    from facetviz.data.fashion_mnist import DEBIAN_FASHION_MNIST, read_idx

    path = DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz"
    if path.exists():
        images, source = read_idx(path)[:n].astype(np.float32) / 255, "Fashion-MNIST test"
    else:
        rows, cols = np.mgrid[0:28, 0:28]
        centres = rng.uniform(8, 20, (n, 2, 1, 1))
        images = np.exp(-((rows - centres[:, 0]) ** 2 + (cols - centres[:, 1]) ** 2) / 40)
        source = "synthetic blobs (Fashion-MNIST not found)"
    images = images[:, None]
    return np.clip(images + rng.normal(0, NOISE, images.shape), 0, 1).astype(np.float32), source


def skimage_step(images: np.ndarray, weight: float) -> np.ndarray:
    """The paper's call per image, on 0-255 pixels; back to [N, C, H, W] in [0, 1]."""
    from skimage.restoration import denoise_tv_bregman

    out = np.empty_like(images)
    for i, image in enumerate(images):
        pixels = 255 * (image[0] if len(image) == 1 else image.transpose(1, 2, 0))
        result = np.atleast_3d(denoise_tv_bregman(pixels, weight=weight, **PAPER))
        out[i] = result.transpose(2, 0, 1) / 255
    return out


def mean_abs(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    difference = np.abs(a.astype(np.float64) - b)
    return float(difference.mean()), float(difference[..., 2:-2, 2:-2].mean())


def main() -> int:
    args = parse_args()
    if args.threads:  # before torch starts its thread pools
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[variable] = str(args.threads)
    try:
        import facetviz  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO / "src"))
    try:
        import skimage
    except ImportError:
        print("scikit-image is not installed: pip install -r requirements.txt", file=sys.stderr)
        return 1
    import torch

    from facetviz.synthesis.regularizers import bregman_strength, tv_denoise

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    rng = np.random.default_rng(0)
    rgb = rgb_images(args.images, 227, rng)
    gray, gray_source = gray_images(args.images, rng)
    sets = {"rgb 3x227x227": rgb, "gray 1x28x28": gray}

    print(
        f"tv_denoise (torch {torch.__version__}, {torch.get_num_threads()} threads, {device}) "
        f"vs skimage {skimage.__version__} denoise_tv_bregman per image "
        f"(max_num_iter={PAPER['max_num_iter']}, eps={PAPER['eps']}, single-threaded)"
    )
    print(f"{args.images} images per batch; gray: {gray_source}; noise N(0, {NOISE})")
    print(f"load average before: {load_average()}")
    print()
    header = (
        f"{'images':<14} {'weight':>6} {'strength':>8} {'iters':>5} {'torch s':>8} "
        f"{'skimage s':>9} {'ratio':>6} {'MAD':>8} {'MAD in':>8} {'grey lv':>7} {'MAD conv':>8}"
    )
    print(header)
    ratios = []
    for name, images in sets.items():
        batch = torch.from_numpy(images).to(device)
        for weight in args.weights:
            strength = bregman_strength(weight)
            reference = skimage_step(images, weight)

            def ours(iterations: int, batch=batch, strength=strength) -> np.ndarray:
                result = tv_denoise(batch, strength, iterations)
                sync()
                return result.cpu().numpy()

            if args.iterations is None:
                results = {k: ours(k) for k in CANDIDATE_ITERATIONS}
                errors = {k: mean_abs(result, reference)[0] for k, result in results.items()}
                best = min(errors.values())
                iterations = min(k for k, e in errors.items() if e <= 1.05 * best)
            else:
                iterations = args.iterations
            result = ours(iterations)
            whole, interior = mean_abs(result, reference)
            unconverged = mean_abs(result, ours(CANDIDATE_ITERATIONS[-1]))[0]

            torch_s, skimage_s = [], []
            for _ in range(args.repeats):
                start = time.perf_counter()
                ours(iterations)
                torch_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                skimage_step(images, weight)
                skimage_s.append(time.perf_counter() - start)
            ratio = statistics.median(skimage_s) / statistics.median(torch_s)
            ratios.append(ratio)
            print(
                f"{name:<14} {weight:>6g} {strength:>8.4f} {iterations:>5} "
                f"{statistics.median(torch_s):>8.3f} {statistics.median(skimage_s):>9.3f} "
                f"{ratio:>6.2f} {whole:>8.5f} {interior:>8.5f} {255 * whole:>7.2f} "
                f"{unconverged:>8.5f}",
                flush=True,
            )
    print()
    print(f"load average after: {load_average()}")
    print(
        "ratio = median skimage s / median torch s per batch; MAD = mean |torch - skimage| on "
        "[0, 1] (MAD in: 2 px from the border; grey lv: MAD on 0-255; MAD conv: mean "
        f"|torch - torch at {CANDIDATE_ITERATIONS[-1]} iterations|)"
    )
    print(f"ratios: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
