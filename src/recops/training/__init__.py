"""Training: fit a model, evaluate it, save a checkpoint; the hashes of what a model depends
on; the quality bench."""
