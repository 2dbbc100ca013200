"""The registered model's code, as MLflow's "models from code" loads it.

``mlflow.pyfunc.log_model`` copies this file into the model and runs it at load time, instead of
unpickling a Python object: no CloudPickle, whose payload can run arbitrary code when loaded
(MLflow warns on every registration that passes an object). Loading still needs ``recops``
importable, as it did with the pickled object.
"""

from mlflow.models import set_model

from recops.registry.pyfunc import RecommenderModel

set_model(RecommenderModel())
