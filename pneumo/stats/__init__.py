"""Numbers from probabilities and labels: classification figures, calibration, operating points.

Plain NumPy, SciPy and scikit-learn on arrays: no TensorFlow, no films. Everything that
reports or chooses a figure (training, evaluation, site calibration, the model card) uses it.
"""
