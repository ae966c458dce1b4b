"""Old home of `storyboard.adapters.export`, kept only while farm/ still imports it from here.

Delete this file in the change that moves farm/'s import to `storyboard.adapters.export`.
"""
from .adapters.export import to_yaml

__all__ = ["to_yaml"]
