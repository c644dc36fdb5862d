"""The training engine (layer 4): the loop, optimiser and schedule, mixed precision, distributed
helpers, resume state, and the one stage builder (:mod:`compress.engine.stage`) every job uses."""
