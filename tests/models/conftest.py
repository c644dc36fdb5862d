import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "real_weights: loads real ImageNet weights from an installed package (CPU, a few seconds)")


@pytest.fixture(autouse=True)
def _few_threads():
    torch.manual_seed(0)
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
