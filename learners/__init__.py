"""robot-time's learners, in three layers (imports point one way, down):

  learners/            the algorithm: method rows (Table II), the Eq. (3) learner
                       and its config, parameter averages (targets, EMA), weightings, losses, priors, critic maths, networks,
                       schedules, batch types, checkpointing.  No Reverb,
                       envlogger, Beam or simulator.
  learners/training/   one run: config, setup, the offline and online loops,
                       actors, replay, mixer, ledger, evaluation, launch CLI,
                       Q-tracking of a run's critic.
  learners/study/      the study: spec, grid, cost, runner, results, report,
                       recommender, results.json export, evaluation stability.  No TensorFlow at module level.

This package imports nothing itself, so `python -m learners.study --dry_run`
stays free of TensorFlow.
"""
