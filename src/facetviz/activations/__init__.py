"""The forward pass into one HDF5 file of codes and target activations, sharded or whole, with
what can go wrong during it."""
