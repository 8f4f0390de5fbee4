"""Training with the papers' recipes (refbench.train.recipes) and a resumable loop."""
from refbench.train.loop import TrainConfig, train
from refbench.train.recipes import RECIPES, TrainRecipe, get_recipe

__all__ = ["TrainConfig", "train", "TrainRecipe", "RECIPES", "get_recipe"]
