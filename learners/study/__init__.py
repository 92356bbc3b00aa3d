"""The study: a grid of runs, their report and the split recommendation (layer 3 of 3).

  spec       the YAML spec: a grid (or a list of grid blocks) and named sweeps
  grid       expansion into runs, up-front checks, run names (hash of identity fields)
  cost       the dry run's estimate
  runner     datasets, teacher evaluation, launcher subprocesses (`python -m learners.study`)
  results    a study's results on disk -> cells with 95 % intervals
  report     the Markdown report and its tables (`python -m learners.study.report`)
  figures    the report's figures (Figs. 3, 4, 5, offline learning curves)
  recommend  the split recommender, the teacher as its baseline (`python -m learners.study.recommend`)
  findings   the paper's findings (a)-(e) checked on the main grid
  export     the report's numbers as results.json
  diagnostics  why, from each cell's training logs (the report's evidence for failed claims)
  compare    two studies' results.json side by side (`python -m learners.study.compare`)
  stability  the checkpoint-to-checkpoint swing of runs' success (`python -m learners.study.stability`)

Imports the run config and the method table, never TensorFlow at module level.
"""
