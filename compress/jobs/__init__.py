"""Jobs (layer 5): each composes training stages (and, for pruning and the pipeline, export and profile);
run-folder creation and ``--resume`` checks live in one place, :mod:`compress.jobs.rundir`.

``classification`` (train, distill), ``metric_learning``, ``cross_source``, ``ensemble_search``;
``preflight`` holds the checks that run before any training.
"""
