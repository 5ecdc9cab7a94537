"""Offline evaluation: splits, metrics, the experiment runner and the HTML report."""
