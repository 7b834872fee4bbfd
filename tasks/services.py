"""Moved by issue 15: the task layer's public API is tasks.actions, its engine tasks.engine.

Only a re-export of the public API for branches written before the move; new code imports tasks.actions.
"""

from tasks.actions import *  # noqa: F403
from tasks.actions import __all__  # noqa: F401
