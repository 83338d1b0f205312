"""Behaviour policies: who acts in task i at state s during data collection. QMP changes only this.

own_policy.py: task i acts with policy i. qswitch.py: the Q-switch and the paper's mixture ablations.
"""
