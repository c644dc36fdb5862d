"""Evaluation of a model on a data set (layer 2, below the methods): classification metrics and
confusion outputs (``classification``), embeddings for retrieval / kNN / clustering (``embedding``),
and scoring a saved checkpoint on its run's split or a new folder (``checkpoint``)."""
