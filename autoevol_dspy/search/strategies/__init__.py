"""The search rules as small objects: batch sampling, evaluation, acceptance, stopping, predictor choice."""

from autoevol_dspy.search.strategies.predictor_choice import PredictorChoice, RoundRobin

__all__ = ["PredictorChoice", "RoundRobin"]
