"""The test suite, a package so that ``tests.support`` imports the same way everywhere.

A package, not a bare folder, because tf-keras-vis installs a top-level package named
``tests`` into site-packages: without this file ``import tests.support`` would find that one,
both under pytest and in ``python -m scripts.load_check``.
"""
