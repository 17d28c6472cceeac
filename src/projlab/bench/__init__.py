"""`python -m projlab.bench`: what each projector costs (alone and inside the training step), what the
framework costs over a plain PyTorch loop, whether the data pipeline keeps up, and the paper
configuration's projectors. Writes bench/results.json and bench/results.md."""
