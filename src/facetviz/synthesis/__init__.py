"""Activation maximization: objectives, transforms, regularizers, and the render loop."""
