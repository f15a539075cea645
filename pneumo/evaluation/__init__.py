"""Measuring: how faithful the heatmaps are, what a data set holds, how fast the model runs."""
