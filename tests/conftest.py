import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# the CLI's --precision auto depends on the CPU (and on the recorded bf16 gate): tests pin the original arithmetic so
# that they give the same results on every machine (tests/test_precision.py covers the other paths)
os.environ.setdefault("VIDEORECAP_PRECISION", "fp32")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module: tiny models gain nothing from more, and on a busy machine (the CI's 2 cores
    are shared) extra threads make every op many times slower. Use with `pytestmark = pytest.mark.usefixtures(...)`
    or as an argument of a module-scoped fixture."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def hold_folder():
    """`hold(folder, seconds)`: another job holds the output lock of `folder` (`videorecap.lock.output_lock`, taken
    in a thread on its own file handle, which `flock` treats as another holder) for `seconds`; returns once it holds
    it. The thread is joined at the end of the test."""
    import threading
    import time

    from videorecap.lock import output_lock

    threads = []

    def hold(folder, seconds: float) -> None:
        held = threading.Event()

        def body() -> None:
            with output_lock(folder, "videorecap another-job -o OUT"):
                held.set()
                time.sleep(seconds)

        t = threading.Thread(target=body, daemon=True)
        t.start()
        threads.append(t)
        assert held.wait(30), "the lock was not taken"

    yield hold
    for t in threads:
        t.join(60)
