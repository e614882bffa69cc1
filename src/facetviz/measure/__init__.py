"""Measuring synthesized images: the oracle, fidelity and transferability, activation ratios,
plausibility, processing path, and the real images each facet is compared with."""
