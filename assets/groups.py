"""Asset group names, one per pipeline stage (the UI groups the graph by these)."""

RAW = "raw"
PREPARE = "prepare"
ENCODERS = "encoders"
PSEUDO = "pseudo"
LGCD = "lgcd"
EVALUATION = "evaluation"
BASELINES = "baselines"
