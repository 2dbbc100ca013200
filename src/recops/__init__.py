"""recops: a sequence-aware recommender from notebook to served, retrained model.

Public entry points (each arrow of the model's path in DESIGN.md is one call):

    from recops.config import load_config
    from recops.data import load_events, build_interactions, leave_one_out_split
    from recops.training.train import train_model
    from recops.training.evaluate import evaluate_model
"""

__version__ = "0.1.0"
