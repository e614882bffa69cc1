"""Facet discovery: select a neuron's images, PCA -> t-SNE -> k-means, mean images; the facet
record, and scores of the facets against fine labels."""
