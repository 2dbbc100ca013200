"""CI/CD of the pipeline (MLOps level 2): offline checks of the deploy specs the workflows use."""
