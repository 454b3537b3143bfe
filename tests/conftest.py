import os

# Tests never touch the network: hubs fail at once instead of retrying (offline-assets.md).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DLMBENCH_NO_PROGRESS", "1")
