"""The learned-delay network on real N-MNIST recordings used as a temporal task (short run)."""
import torch
from torch.utils.data import DataLoader

from snn.datasets import collate_time_first
from snn.delays import delay_layers
from snn.models.shd import DelaySNN
from snn.train import train_epoch
from snn.train.data import DataSpec, build_datasets


def test_learned_delays_learn_real_nmnist(nmnist_small_dir, tmp_path):
    """300 real training recordings (17×17×2 = 578 channels × 20 bins of 15 ms), 3 epochs, the
    recipe's hooks; tested on the 100 real test recordings with integer delays."""
    lines = [ln for ln in (nmnist_small_dir / "train1K.txt").read_text().splitlines() if ln and ln[0] != "#"]
    (tmp_path / "train300.txt").write_text("\n".join(lines[:300]) + "\n")
    spec = DataSpec(data=str(nmnist_small_dir), labels=str(tmp_path / "train300.txt"),
                    test_data=str(nmnist_small_dir), test_labels="test100.txt", T=20, time_window=15_000,
                    downsample=0.5, cache_dir=str(tmp_path / "cache"), progress=False)
    train, test, info = build_datasets(spec)
    assert info["frame_shape"] == [20, 2, 17, 17]
    torch.manual_seed(0)
    model = DelaySNN(in_features=578, num_classes=10, hidden=(48,), max_delay=8, channel_bins=None, tau=5.0,
                     readout_tau=5.0, dropout=0.1)
    opt = torch.optim.Adam(model.param_groups(3e-3))
    epochs = 3
    for epoch in range(epochs):
        model.on_epoch_start(epoch, epochs)
        model.train()
        loader = DataLoader(train, 25, shuffle=True, generator=torch.Generator().manual_seed(epoch),
                            collate_fn=collate_time_first)
        train_epoch(model, loader, opt, torch.device("cpu"))    # clamps positions after each step
    model.on_train_end()
    model.eval()
    with torch.no_grad():
        x, y = collate_time_first([test[i] for i in range(len(test))])
        acc = float((model(x).mean(0).argmax(1) == y).float().mean())
    assert all(layer.integer for layer in delay_layers(model))
    assert acc >= 0.6, acc
