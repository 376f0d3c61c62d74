"""Atlas ML engine: pure Python + NumPy + PyTorch + MONAI. Never imports Django, Celery or DRF."""
