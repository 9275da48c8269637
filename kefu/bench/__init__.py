"""`kefu bench`: latency, throughput, memory, training speed and accuracy cost, side by side.

Light on import (no torch here): the load generator runs as `python -m
kefu.bench.server_load` in its own process and must start fast.
"""
