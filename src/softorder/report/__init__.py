"""Insight into what soft ordering learned: plots of S and learning curves, and HTML reports."""
