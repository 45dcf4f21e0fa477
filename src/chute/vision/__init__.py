"""Vision: datasets, transforms, image I/O and plots (the first pieces of torchvision)."""
