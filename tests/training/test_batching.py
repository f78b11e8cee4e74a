"""Padded token sequences: each batch cut to its longest row; length-bucketed shuffling."""

from __future__ import annotations

import torch

from tunelab.training.batching import Batches, TensorData, bucketed_order, inference_batches


def token_data(lengths: list[int], *, buckets: bool = False) -> TensorData:
    width = max(lengths)
    length = torch.tensor(lengths)
    mask = (torch.arange(width)[None, :] < length[:, None]).long()
    ids = mask * (torch.arange(len(lengths))[:, None] + 1)  # row number on real tokens
    return TensorData((ids, mask), torch.arange(len(lengths)), lengths=length, buckets=buckets)


def test_every_batch_is_cut_to_its_longest_row() -> None:
    lengths = [3, 9, 2, 2, 4, 1, 7, 2]
    batches = Batches(token_data(lengths), batch_size=3, device=torch.device("cpu"))
    for shuffle in (False, True):
        seen = 0
        for (ids, mask), target in batches.iterate(shuffle=shuffle):
            expected = max(lengths[int(row)] for row in target)
            assert ids.shape[1] == mask.shape[1] == expected
            assert torch.equal(mask.sum(1), torch.tensor([lengths[int(r)] for r in target]))
            seen += len(target)
        assert seen == len(lengths)


def test_bucketed_batches_hold_texts_of_similar_length() -> None:
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 200, (1000,), generator=generator)
    order = bucketed_order(lengths, 10, torch.Generator().manual_seed(1))
    assert sorted(order.tolist()) == list(range(1000))
    spread = [float(lengths[b].max() - lengths[b].min()) for b in order.split(10)]
    random_spread = [
        float(lengths[b].max() - lengths[b].min()) for b in torch.randperm(1000).split(10)
    ]
    assert sum(spread) < sum(random_spread) / 5


def test_bucketing_keeps_the_short_batch_last_and_pads_less() -> None:
    lengths = [
        int(x) for x in torch.randint(1, 60, (103,), generator=torch.Generator().manual_seed(2))
    ]

    def padded(buckets: bool) -> int:
        batches = Batches(token_data(lengths, buckets=buckets), batch_size=8,
                          device=torch.device("cpu"))  # fmt: skip
        sizes, cells = [], 0
        for (ids, _), target in batches.iterate(shuffle=True, generator=torch.Generator()):
            sizes.append(len(target))
            cells += ids.numel()
        assert sizes[:-1] == [8] * 12 and sizes[-1] == 7
        return cells

    assert padded(True) < 0.8 * padded(False)


def test_inference_batches_run_texts_longest_first_each_cut_to_its_longest_row() -> None:
    lengths = [3, 9, 2, 2, 4, 1, 7, 2]
    data = token_data(lengths)
    seen: list[int] = []
    widths: list[int] = []
    for rows, (ids, mask) in inference_batches(data.features, data.lengths, 3):
        assert ids.shape[1] == mask.shape[1] == max(lengths[int(r)] for r in rows)
        assert torch.equal(ids[:, 0], rows + 1)  # the rows named are the rows given
        seen += rows.tolist()
        widths.append(ids.shape[1])
    assert sorted(seen) == list(range(len(lengths)))
    assert widths == [9, 3, 2], "sorted by length: the later batches pad little"


def test_inference_batches_keep_other_inputs_in_order() -> None:
    features = (torch.arange(10).reshape(5, 2),)
    pairs = list(inference_batches(features, None, 2))
    assert [rows.tolist() for rows, _ in pairs] == [[0, 1], [2, 3], [4]]
    assert torch.equal(torch.cat([batch[0] for _, batch in pairs]), features[0])
