import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmsa_core.losses import AdaptiveClassBalancedLoss, FocalLoss, balanced_class_weights, create_loss


def test_focal_with_gamma_zero_is_cross_entropy():
    logits, y = torch.randn(16, 3), torch.randint(0, 3, (16,))
    assert torch.allclose(FocalLoss(gamma=0.0)(logits, y), F.cross_entropy(logits, y), atol=1e-6)


def test_focal_down_weights_easy_examples():
    y = torch.tensor([0])
    easy, hard = torch.tensor([[5.0, 0.0, 0.0]]), torch.tensor([[0.0, 5.0, 0.0]])
    ratio_focal = FocalLoss()(easy, y) / FocalLoss()(hard, y)
    ratio_ce = F.cross_entropy(easy, y) / F.cross_entropy(hard, y)
    assert ratio_focal < ratio_ce / 100


def test_balanced_weights_favour_the_rare_class():
    w = balanced_class_weights(np.array([0] * 30 + [1] * 10 + [2] * 60), 3)
    assert w[1] > w[0] > w[2]
    assert torch.allclose((w * torch.tensor([30.0, 10, 60])).sum(), torch.tensor(100.0))


def test_adaptive_loss_tracks_class_difficulty_and_boundary():
    loss = AdaptiveClassBalancedLoss(3, momentum=0.0).train()
    y = torch.tensor([0, 1, 2])
    logits = torch.tensor([[4.0, 0, 0], [0.0, 0.2, 0], [0.0, 0, 4]])  # neutral is hard
    value = loss(logits, y)
    assert torch.isfinite(value) and value > 0
    assert loss.difficulty[1] > loss.difficulty[0] and loss.difficulty[1] > loss.difficulty[2]
    # a sample on the wrong side of the boundary counts more than one barely right
    loss.eval()
    wrong = loss(torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([0]))
    right = loss(torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0]))
    assert wrong > 10 * right


def test_adaptive_loss_trains_a_separable_problem():
    torch.manual_seed(0)
    x = torch.randn(128, 5)
    y = (x @ torch.randn(5, 3)).argmax(1)
    lin = torch.nn.Linear(5, 3)
    crit, opt = AdaptiveClassBalancedLoss(3), torch.optim.SGD(lin.parameters(), lr=0.5)
    for _ in range(200):
        loss = crit(lin(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (lin(x).argmax(1) == y).float().mean() > 0.9


def test_unknown_loss_lists_the_menu():
    with pytest.raises(ValueError, match="adaptive"):
        create_loss("hinge", np.array([0, 1, 2]), 3)
