"""Learned priors: an image generator that inverts the network's code, and a denoising
autoencoder on that code; their training and safe loading."""
