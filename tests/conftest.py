import os

# Tests never touch the network: hubs fail at once instead of retrying (tests/data/test_hub_offline.py).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DLMBENCH_NO_PROGRESS", "1")
