"""Class maps (LayerCAM) and saliency for every image family: shapes, finite, not constant; and on synthetic
images whose class is decided by the top-left quadrant alone, the class map's mass lies mostly there."""

from __future__ import annotations

import pytest
import torch

from trainlab.config import ModelConfig
from trainlab.inference.explain import IG, LAYERCAM, ROLLOUT, explain, quadrant_mass
from trainlab.models import build_model

FAMILIES = {  # name: (init_args, one input's shape)
    "convnet": ({"channels": [8, 16], "hidden": [32]}, (1, 32, 32)),
    "lenet5": ({"activation": "relu"}, (1, 32, 32)),
    "speednet": ({"widths": [16, 32, 32]}, (3, 32, 32)),
    "cifar_resnet": ({}, (3, 32, 32)),
    "resnet18": ({}, (3, 64, 64)),
    "vgg11": ({}, (3, 64, 64)),
    "vit_small": ({"patch_size": 8, "depth": 2, "width": 32, "heads": 2}, (3, 32, 32)),
    "cnn_lstm": ({"hidden_size": 16, "latent_dim": 16}, (3, 1, 32, 32)),
    "r3d_18": ({}, (3, 3, 32, 32)),
}
DISTRACT = 1.0
FAST_QUADRANT = ["convnet", "lenet5"]  # and vit_small below; the others train slowly on CPU: marked slow
# (steps, Adam lr); the others (150, 1e-3). VGG-11 (no batch norm) does not learn at 1e-3 in 150 steps
# (test accuracy 0.53 measured): it gets 1e-4.
TRAINING = {"lenet5": (100, 2e-3), "vgg11": (150, 1e-4)}


def _model(name: str, classes: int = 2, seed: int = 0):
    args, shape = FAMILIES[name]
    torch.manual_seed(seed)
    m = build_model(ModelConfig(name=name, init_args=args),
                    inferred={"num_classes": classes, "in_channels": shape[-3], "input_size": list(shape[-2:])})
    for n, p in m.named_parameters():
        if n.startswith("heads"):  # torchvision's ViT starts with a zero head: every gradient would be 0
            torch.nn.init.normal_(p, std=0.05)
    return m, shape


@pytest.mark.parametrize("name, method", [(n, m) for n in FAMILIES for m in ("auto", "ig")]
                         + [("vit_small", "rollout")])
def test_maps_have_the_input_shape_are_finite_and_not_constant(name, method):
    m, shape = _model(name, classes=5)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    maps = explain(m, x, method=method)
    want = (2, *shape[:1], *shape[-2:]) if len(shape) == 4 else (2, *shape[-2:])
    for which in (maps.gradcam, maps.saliency):
        assert tuple(which.shape) == want
        assert torch.isfinite(which).all() and which.min() >= 0 and which.max() <= 1
        assert all(float(which[i].std()) > 1e-4 for i in range(2))
    assert maps.pred.tolist() == m(x).argmax(1).tolist()
    want_method = {"ig": IG, "rollout": ROLLOUT}.get(method, IG if name == "vit_small" else LAYERCAM)
    assert maps.method == want_method


def test_maps_of_a_layer_followed_by_in_place_ops_equal_those_of_the_same_net_without_them():
    from torch import nn

    def net(inplace: bool):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=inplace), nn.Conv2d(4, 4, 3, padding=1),
                             nn.BatchNorm2d(4), nn.ReLU(inplace=inplace), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(4, 3)).eval()

    from trainlab.inference.explain import layer_ig, layercam

    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    a, b = net(True), net(False)
    for draw in (layercam, layer_ig):
        for i in (0, 3):  # a convolution and a batch norm, each followed by ReLU(inplace=True) in ``a``
            got, want = draw(a, a[i], x, None)[2], draw(b, b[i], x, None)[2]
            assert float(want.sum()) > 0 and torch.allclose(got, want, atol=1e-6)


def test_the_methods_the_cli_offers_are_the_ones_explain_takes_and_a_wrong_one_is_refused():
    from trainlab.cli.use import EXPLAIN_CLASS_OF, EXPLAIN_METHODS
    from trainlab.errors import ConfigError
    from trainlab.inference.explain import METHODS
    from trainlab.inference.explain_page import CLASS_OF

    assert EXPLAIN_METHODS == list(METHODS) and EXPLAIN_CLASS_OF == list(CLASS_OF)
    m, shape = _model("convnet")
    x = torch.zeros(1, *shape)
    with pytest.raises(ConfigError, match="'rollout'.*Vision Transformer"):
        explain(m, x, method="rollout")
    with pytest.raises(ConfigError, match="'gradcam'.*auto, layercam, ig, rollout"):
        explain(m, x, method="gradcam")


def test_the_layer_is_the_deepest_whose_cells_see_at_most_half_the_input():
    from trainlab.inference.explain_layer import choose_layer, receptive_share

    torch.manual_seed(0)
    layers = []
    for _ in range(10):  # 3x3 convolutions: after k of them a cell sees 2k + 1 pixels
        layers += [torch.nn.Conv2d(2, 2, 3, padding=1), torch.nn.Tanh()]
    net = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(2, 3))
    x = torch.zeros(1, 2, 32, 32)
    assert receptive_share(net, net[4], x) == 7 / 32  # the third convolution
    name, _, share = choose_layer(net, net, x)
    assert (name, share) == ("13", 15 / 32)  # the 7th tanh: 15 of 32 pixels; the 8th conv would see 17
    m, _ = _model("cifar_resnet")
    name, _, share = choose_layer(m.eval(), m, torch.zeros(1, 3, 32, 32))
    assert (name, share) == ("blocks.2", 15 / 32)  # the first stage's output, not a shortcut of the second


def quadrant_images(n: int, shape, seed: int = 0, classes: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise with a bright 6x6 shape in each quadrant: in the top-left one a filled square (class 0) or a
    ring (class 1), in the other three a cross (the same for both classes: a bright distractor).
    ``classes=3`` adds class 2, a cross in the top-left too: nothing there tells it from the rest, so
    it is the class of absent evidence, and the square and the ring each need a detector of their own."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = shape[-3:]
    x = torch.randn(n, c, h, w, generator=g) * 0.3
    y = torch.randint(0, classes, (n,), generator=g)
    ring, cross = torch.ones(6, 6), torch.zeros(6, 6)
    ring[1:5, 1:5] = 0
    cross[2:4, :] = cross[:, 2:4] = 1
    shapes = [2.0 * torch.ones(6, 6), 2.0 * ring, DISTRACT * cross]
    pos = torch.randint(2, h // 2 - 8, (n, 4, 2), generator=g)
    for i in range(n):
        for q in range(4):
            r0, c0 = (q // 2) * h // 2 + int(pos[i, q, 0]), (q % 2) * w // 2 + int(pos[i, q, 1])
            x[i, :, r0:r0 + 6, c0:c0 + 6] += shapes[int(y[i])] if q == 0 else DISTRACT * cross
    if len(shape) == 4:  # clips: the same image in every frame
        x = x.unsqueeze(1).expand(-1, shape[0], -1, -1, -1).contiguous()
    return x, y


def _train(m, shape, steps: int, lr: float = 1e-3, classes: int = 2):
    x, y = quadrant_images(512 * classes // 2, shape, classes=classes)
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    g = torch.Generator().manual_seed(2)
    m.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=g)
        loss = torch.nn.functional.cross_entropy(m(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    xt, yt = quadrant_images(32 * classes, shape, seed=9, classes=classes)
    with torch.no_grad():
        acc = (m(xt).argmax(1) == yt).float().mean().item()
    return xt, yt, acc


def _check_quadrant(name: str, classes: int = 2, steps=None, seed: int = 0):
    m, shape = _model(name, classes, seed)
    train_steps, lr = TRAINING.get(name, (150, 1e-3))
    xt, yt, acc = _train(m, shape, steps or train_steps, lr, classes)
    assert acc >= 0.9, f"{name} did not learn the synthetic task (test accuracy {acc:.2f})"
    maps = explain(m, xt)
    cam = maps.gradcam if maps.gradcam.dim() == 3 else maps.gradcam.mean(1)
    shares = torch.stack([quadrant_mass(cam, q) for q in range(4)], 1)[yt < 2]  # [N, 4]: square and ring
    assert float(shares[:, 0].median()) > 0.5, f"{name}: median class-map share in the deciding quadrant " \
                                               f"{shares[:, 0].median():.2f}"
    assert float((shares.argmax(1) == 0).float().mean()) >= 0.9  # and it is the map's heaviest quadrant


@pytest.mark.parametrize("name", FAST_QUADRANT)
def test_gradcam_mass_lies_in_the_quadrant_that_decides_the_class(name):
    _check_quadrant(name)


# Measured on CPU (median share in the deciding quadrant / share of images where it is the heaviest), with
# Grad-CAM at the last spatial layer before (the method until then) -> LayerCAM at the layer chosen by
# receptive field now: convnet 0.52/1.00 -> 0.68/1.00, lenet5 0.59/0.95 -> 0.53/0.98, speednet 0.67/1.00 ->
# 0.99/1.00, cifar_resnet 0.37/1.00 -> 0.79/0.91, resnet18 at 64 px 0.07/0.00 -> 0.75/1.00, cnn_lstm
# 0.24/0.47 -> 0.87/0.97, r3d_18 0.06/0.02 -> 0.87/1.00; still short: vgg11 0.08/0.23 -> 0.85/0.53. The
# shortfall is one class: the square and the ring differ only in the filled centre, and vgg11 decides one
# class by what is missing there, which a map of evidence cannot point at: every layer and weighting
# measured, Integrated Gradients too, gives the ring images 0.06-0.30 of the mass in the deciding quadrant,
# the square images 0.94. The same runs on a second task whose two classes are both a present shape (a plus
# or an X in the top-left, filled squares elsewhere) fail the same way (plus 0.88/1.00, X 0.07/0.00): with
# two classes a network can learn one detector and call the other class its absence. An expected failure.
WEAK = {"vgg11": "0.85 / 0.53 (ring class 0.14 / 0.00)"}


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(
    reason=f"class-map localisation measured weak for {n}: {WEAK[n]}", strict=False)) if n in WEAK else n
    for n in FAMILIES if n not in FAST_QUADRANT and n != "vit_small"])
def test_gradcam_mass_lies_in_the_deciding_quadrant_for_large_and_clip_models(name):
    _check_quadrant(name)


def test_the_runner_up_map_finds_where_a_class_of_absent_evidence_was_decided():
    """lenet5 calls a ring 'no filled square': its ring images' own maps (0.47 / 0.97) have little to
    show, the map of the runner-up, the square class (``--class-of second``), is where the ring is."""
    m, shape = _model("lenet5")
    xt, yt, acc = _train(m, shape, *TRAINING["lenet5"])
    assert acc >= 0.9
    ring = xt[yt == 1]
    runner_up = m(ring).topk(2, dim=1).indices[:, 1]
    cam = explain(m, ring, target=runner_up).gradcam
    shares = torch.stack([quadrant_mass(cam, q) for q in range(4)], 1)
    assert float(shares[:, 0].median()) > 0.5 and float((shares.argmax(1) == 0).float().mean()) >= 0.9


# With a third class of absent evidence (a cross in the top-left, like the distractors), one detector can no
# longer serve two classes, and the maps of the square and ring images are measured (the third class has
# nothing to point at). Measured on CPU (median share / share heaviest, square and ring images): vgg11 200
# steps 0.83 / 0.92 (ring 0.42 / 0.81, against 0.14 / 0.00 with two classes).
@pytest.mark.slow
def test_with_a_class_of_absent_evidence_each_shape_gets_its_detector_and_the_map_finds_it():
    _check_quadrant("vgg11", classes=3, steps=200)


# The ViT trains in seconds, so it is measured over three initialisations (400 steps per class beyond the
# first). Its map is Integrated Gradients at the patch embedding (explain's "auto"): with three classes,
# median share / share heaviest 0.88/1.00, 0.59/0.97, 0.64/0.92 for seeds 0-2, where the gradient-weighted
# attention rollout gave 0.59/0.87, 0.60/0.83, 0.63/0.89. With two classes seed 0 passes (0.90/0.91) but
# seeds 1 and 2 do not (0.79/0.73, 0.75/0.86; the ring class 0.31/0.45, 0.53/0.74), the absent-evidence
# failure of vgg11 above.
TWO_CLASS_VIT = pytest.mark.xfail(reason="two classes: the ring class decided by absent evidence, measured "
                                         "0.79/0.73 and 0.75/0.86", strict=False)


@pytest.mark.parametrize("classes, seed", [(3, 0), (3, 1), (3, 2), (2, 0)]
                         + [pytest.param(2, s, marks=TWO_CLASS_VIT) for s in (1, 2)])
def test_a_vit_map_lies_in_the_deciding_quadrant_over_initialisations(classes, seed):
    _check_quadrant("vit_small", classes=classes, steps=400 * (classes - 1), seed=seed)


def test_the_vit_attention_written_out_is_the_modules_own():
    from trainlab.inference.explain_vit import _self_attention

    m, shape = _model("vit_small")
    mha = m.vit.encoder.layers[0].self_attention if hasattr(m, "vit") else \
        next(b for b in m.modules() if isinstance(b, torch.nn.MultiheadAttention))
    x = torch.randn(3, 17, mha.embed_dim, generator=torch.Generator().manual_seed(0))
    want, _ = mha(x, x, x, need_weights=False)
    got, attn = _self_attention(mha.eval(), x)
    assert torch.allclose(got, want, atol=1e-5) and attn.shape == (3, mha.num_heads, 17, 17)
    assert torch.allclose(attn.sum(-1), torch.ones(3, mha.num_heads, 17))
    maps = explain(m, torch.randn(2, *shape), method="rollout")
    assert "rollout" in maps.method and "encoder blocks" in maps.layer and type(mha).forward is torch.nn.MultiheadAttention.forward
    assert "forward" not in vars(mha)  # the module is itself again
