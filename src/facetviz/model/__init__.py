"""The visualized networks (embedded CNN, torchvision architectures, users' modules), their layers
and units, the fit loop they share, and the train stage."""
