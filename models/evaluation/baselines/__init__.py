"""Baselines ranked by the same evaluation code and candidates as LGCD (models/evaluation/ranking.py).

popularity, cross-domain item-KNN, SASRec and GRU4Rec on mixed sequences, and an
EMCDR-style mapping of pre-trained source representations to the target space.
Each exposes ``score(users, target_domain, candidates)`` (the ``Scorer`` protocol).
"""
