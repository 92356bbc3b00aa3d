"""One learner for every method of the study (Eq. (3) + distributional critic)."""

from learners.learner import Learner, LearnerConfig, NonFiniteError
from learners.methods import METHOD_TABLE, METHODS, Method, get_method
from learners.networks import NetworkConfig
from learners.types import Batch
