import pytest
import torch

from dctutor.training import History, TrainingDiverged, batches, check_finite


def test_batches_cover_every_index_once():
    g = torch.Generator().manual_seed(0)
    seen = torch.cat(list(batches(103, 10, generator=g)))
    assert sorted(seen.tolist()) == list(range(103))
    assert len(list(batches(103, 10, drop_last=True))) == 10
    with pytest.raises(ValueError):
        next(batches(10, 0))


def test_history_logs_tensors_as_numbers():
    h = History()
    h.log(epoch=1, loss=torch.tensor(0.5), sizes=torch.tensor([1, 2]))
    h.log(epoch=2, loss=0.25, sizes=[3, 4])
    assert h.loss == [0.5, 0.25] and h.last("sizes") == [3, 4]
    with pytest.raises(KeyError):
        h.last("acc")


def test_check_finite():
    check_finite(torch.tensor([1.0, 2.0]))
    with pytest.raises(TrainingDiverged, match="nan.*step 7"):
        check_finite(torch.tensor(float("nan")), step=7)
