"""The parts every stage shares: typed settings, typed HDF5 records, atomic file IO, errors a user
can act on, progress lines."""
