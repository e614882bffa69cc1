"""Datasets: Fashion-MNIST, its colour scenes and ImageFolder trees with merged labels, and their
parse-time checks."""

from facetviz.data import scene_data  # noqa: F401  (registers the fashion_scenes kind)
