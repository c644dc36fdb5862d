import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads():
    torch.manual_seed(0)
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
