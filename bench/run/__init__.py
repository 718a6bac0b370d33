"""A run: its cases planned from a profile and the flags (plan.py), then measured through their
kinds, with the peaks probed around them, and derived (runner.py).
"""
