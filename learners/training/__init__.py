"""One run of the study: a method under a data budget (layer 2 of 3).

  config         RunConfig (each field tagged identity / operational) and its checks
  setup          builders for a run's parts: workdir, dataset, teacher, learner,
                 ledger/resume, replay, actors, streams, evaluator
  loop           `train()`: setup, offline phase, online phase, final checkpoint + eval
  grad_schedule  the grad steps due for the env steps (both loops use it)
  online_actors  the learner's side of the multi-actor online phase
  actors, distributed, replay, mixer, ledger, evaluation, workdir: what they say
  launch         the CLI: python -m learners.training.launch

Importing this package imports nothing; `config`, `ledger` and `workdir` are
free of TensorFlow (the study layer reads them).
"""
