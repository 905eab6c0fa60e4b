"""The SERAC model-editing package: the SERAC editor and the core shared by every method."""
