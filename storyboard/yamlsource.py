"""Old home of `storyboard.adapters.yamlsource`, kept only while farm/ still imports it from here.

Delete this file in the change that moves farm/'s import to `storyboard.adapters.yamlsource`.
"""
from .adapters.yamlsource import load_yaml

__all__ = ["load_yaml"]
