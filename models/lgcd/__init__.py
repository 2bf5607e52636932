"""LGCD: the conditional diffusion model, its MoE fusion, its data, training and scoring."""
