import pytest
import torch


@pytest.fixture(autouse=True)
def one_cpu_thread(monkeypatch):
    # Tiny models gain nothing from threads, and on a shared CPU idle-spinning threads
    # make them many times slower.
    monkeypatch.setenv("SERAC_DEVICE", "cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
