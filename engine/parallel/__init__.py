"""Sequence parallelism: a gang of processes renders one segment with the transformer's tokens split,
CFG's two passes on its halves and the VAE's tiles shared.

- `layout.py`: how a gang shares one attention call (Ulysses and ring degrees, uneven token counts);
  plain arithmetic, no torch.
- `sharding.py`: sharding a transformer over the current torch.distributed group through diffusers'
  context parallelism (and undoing it), and sharing rank 0's inputs with the gang.
- `cfg.py`: classifier-free guidance in parallel, the two passes on the gang's two halves.
- `tiled_decode.py`: a tiled VAE decode shared by the gang, joined on rank 0.
- `cpu_attention.py`: what diffusers lacks for exact ring attention on CPU and gloo (tests, selftest).
- `xfuser_sp.py`: xDiT's long-context attention as the exchange instead (GPU only, imported lazily).
- `selftest.py`: the tiny transformer and inputs that `sakuga selftest sp` compares across a gang.

This file imports nothing, so `engine.parallel.layout` stays free of torch.
"""
