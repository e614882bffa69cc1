"""Directions in a layer's unit space, learned from stored activations rather than single units:
a linear probe's direction for a class (`probe`) and the latents of a TopK sparse autoencoder
(`sae`), each readable as an affine function of the layer's raw unit vector, so that a direction
can be ranked over images or synthesized like a neuron. Sits between `activations` (whose files
it reads) and `facets`: it imports only from core, data, model and activations.
"""
