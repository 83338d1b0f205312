"""Behaviour policies: who acts in task i at state s during data collection. QMP changes only this.

own_policy.py: task i acts with policy i. qswitch.py: the Q-switch and the paper's mixture ablations.
ctpg.py, ctpg_learner.py: CTPG's learned guides. options.py: the options of the Q-switch and CTPG, declared
once (type, default, flag, help); the command line makes its flags and Config fields from them.
protocol.py: ``BehaviourPolicy``, the calls all of them answer, and ``best_candidate``, the Q-switch's arg-max.
"""
