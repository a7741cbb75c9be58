"""The oracle: a model of a pid namespace chain that predicts, for any clone-with-pids call, the child's
exact NSpid or the exact errno, under the clone3 or the eclone rules (see predict.py).

model.py (state) · predict.py (rules) · effects.py (state changes) · sync.py (state from agent reports) ·
check.py (kernel vs model) · choices.py (symbolic pids) · runner.py / scenario.py (programs on a target).
"""

from .model import (
    CAP_CHECKPOINT_RESTORE,
    CAP_SYS_ADMIN,
    MAX_PID_NS_LEVEL,
    RESERVED_PIDS,
    ChainState,
    Creds,
    Level,
    build_chain_state,
)
from .predict import RULES, Outcome, Rules, Spawn, Unpredictable, rules_for

__all__ = [
    "CAP_CHECKPOINT_RESTORE", "CAP_SYS_ADMIN", "MAX_PID_NS_LEVEL", "RESERVED_PIDS", "RULES", "ChainState", "Creds",
    "Level", "Outcome", "Rules", "Spawn", "Unpredictable", "build_chain_state", "rules_for",
]
