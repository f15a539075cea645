"""Turning results into what a person reads: words, colours, plotly charts, the PDF report.

``palette`` (every colour), ``wording`` (verdicts, numbers, sentences), ``charts`` (plotly),
``pdf`` (fpdf), ``terminal`` and ``faithfulness_words`` (text for the CLI and the pages), and
the pages' view models, ``diagnosis`` and ``model_card``: they take results and cards and
return plain values to lay out, so the pages draw and compute nothing. No figure is
measured here.
"""
