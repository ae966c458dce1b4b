"""Input languages of sakuga: the storyboard model, its adapters (YAML, PV script, AniSora prompt
file) and the planner that compiles a storyboard into a DAG of render segments.

Nothing here imports torch, ray or diffusers.
"""
