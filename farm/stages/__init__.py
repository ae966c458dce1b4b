"""Delivery stages: the per-shot farm work (upscale, retime) that turns rendered segments into a
delivery profile's pictures. `stage.py` plans them, `cost.py` estimates them, `work.py` runs one."""
