import os

# Idle OpenMP threads sleep instead of spinning. On a shared 2-core machine a
# spinning torch thread pool was measured 40-70x slower under contention (a tiny
# training loop: 40 s vs 0.57 s); it must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
