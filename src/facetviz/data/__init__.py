"""Datasets: Fashion-MNIST and ImageFolder trees with merged labels, and their parse-time checks."""
