"""Model anatomy: shapes and mult-adds against hand calculations, tied weights, real file sizes."""

import os
import re

import pytest
import torch
from torch import nn

from trainlab.analysis.anatomy import analyse
from trainlab.analysis.diagram import diagram_rows, draw
from trainlab.analysis.sizes import disk_sizes
from trainlab.analysis.summary import format_table, model_for_summary, summarize_model
from trainlab.cli import main
from trainlab.models import count_parameters


def test_resnet18_at_64x64_matches_a_hand_calculation():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(num_classes=200)
    a = analyse(model, (3, 64, 64))
    # 7x7 stride-2 conv and a stride-2 max-pool take 64 -> 32 -> 16; each later stage halves it
    expected = {"conv1": (1, 64, 32, 32), "maxpool": (1, 64, 16, 16), "layer1": (1, 64, 16, 16),
                "layer2": (1, 128, 8, 8), "layer3": (1, 256, 4, 4), "layer4": (1, 512, 2, 2),
                "avgpool": (1, 512, 1, 1), "fc": (1, 200), "layer2.0.downsample.0": (1, 128, 8, 8)}
    for name, shape in expected.items():
        assert a.row(name).output == shape, name
    assert a.row("conv1").params == 3 * 64 * 7 * 7
    assert a.row("conv1").macs == 32 * 32 * 64 * (3 * 7 * 7)
    assert a.row("layer1.0.conv1").macs == 16 * 16 * 64 * (64 * 3 * 3)
    assert a.row("fc").params == 512 * 200 + 200 and a.row("fc").macs == 512 * 200
    # the published 11,689,512 for 1000 classes, less the 1000-way head, plus a 200-way one
    assert a.total_params == 11_689_512 - (512 * 1000 + 1000) + (512 * 200 + 200)
    assert a.total_params == count_parameters(model)[0]


@pytest.mark.parametrize("name, shapes", [
    ("mlp", {"net.0": (1, 784), "net.1": (1, 512), "net.7": (1, 10)}),
    ("lenet5", {"features.0": (1, 6, 28, 28), "features.2": (1, 6, 14, 14), "features.3": (1, 16, 10, 10),
                "features.6": (1, 400), "classifier.4": (1, 10)}),
    ("convnet", {"features.0": (1, 32, 28, 28), "features.3": (1, 32, 14, 14), "features.7": (1, 64, 7, 7),
                 "classifier.3": (1, 10)}),
])
def test_registered_models_shapes_and_totals(name, shapes):
    model, shape = model_for_summary(name, (1, 28, 28), 10)
    a = analyse(model, shape)
    for module, out in shapes.items():
        assert a.row(module).output == out, module
    assert a.total_params == count_parameters(model)[0]
    assert a.row("").total_params == a.total_params


class TiedLM(nn.Module):
    """Embedding and output layer share one weight matrix (weight tying), plus a frozen layer."""

    def __init__(self, vocab=50, dim=16):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, dim, batch_first=True)
        self.frozen = nn.Linear(dim, dim)
        self.frozen.requires_grad_(False)
        self.out = nn.Linear(dim, vocab)
        self.out.weight = self.emb.weight

    def forward(self, x):  # [B, T] -> [B, T, vocab]
        h, _ = self.rnn(self.emb(x))
        return self.out(self.frozen(h))


def test_tied_weights_are_counted_once_and_frozen_ones_reported():
    model = TiedLM()
    a = analyse(model, (7,), "long")
    unique = 50 * 16 + 4 * 16 * (16 + 16) + 8 * 16 + (16 * 16 + 16) + 50
    assert a.total_params == unique == count_parameters(model)[0]
    assert a.frozen_params == 16 * 16 + 16
    out = a.row("out")
    assert out.params == 50 and out.shared == 50 * 16 and out.shared_with == "emb"
    # LSTM: 7 steps x 4 gates x hidden x (input + hidden); Linear over a sequence counts every step
    assert a.row("rnn").macs == 7 * 4 * 16 * 32
    assert a.row("out").macs == 7 * 16 * 50
    assert "tied to emb" in format_table(a)


def test_on_disk_sizes_are_the_files_sizes_and_tying_saves_space(tmp_path):
    tied, untied = TiedLM(500, 64), TiedLM(500, 64)
    untied.out.weight = nn.Parameter(untied.emb.weight.detach().clone())
    s_tied = disk_sizes(tied, directory=tmp_path / "t")
    s_untied = disk_sizes(untied, directory=tmp_path / "u")
    for d, s in ((tmp_path / "t", s_tied), (tmp_path / "u", s_untied)):
        assert s["weights_only"] == os.path.getsize(d / "weights_only.pt")
        assert s["full_checkpoint"] == os.path.getsize(d / "full_checkpoint.pt")
    shared_bytes = 500 * 64 * 4
    assert s_untied["weights_only"] - s_tied["weights_only"] == pytest.approx(shared_bytes, rel=0.05)
    # Adam keeps two more tensors per trainable parameter (plus a few hundred bytes of zip headers each)
    trainable_bytes = sum(p.numel() * 4 for p in dict.fromkeys(tied.parameters()) if p.requires_grad)
    extra = s_tied["full_checkpoint"] - s_tied["weights_only"]
    assert extra == pytest.approx(2 * trainable_bytes, rel=0.1)


def test_attention_mult_adds_and_diagram(tmp_path):
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    model = nn.Sequential(nn.Embedding(20, 32), nn.TransformerEncoder(layer, 2, enable_nested_tensor=False))
    a = analyse(model, (10,), "long")
    attn = a.row("1.layers.0.self_attn")
    assert attn.output == (1, 10, 32)
    assert attn.macs == 4 * 10 * 32 * 32 + 2 * 10 * 10 * 32  # q, k, v, out projections + scores and mixing
    names = [r.name for r in diagram_rows(a)]
    assert "1.layers.0.self_attn" in names and "1.layers.0.self_attn.out_proj" not in names
    path = draw(a, tmp_path / "model.png")
    assert path.stat().st_size > 5000



def test_scaled_dot_product_attention_counts_in_the_module_that_calls_it():
    from trainlab.models.transformer_lm import TransformerLM

    t, d, heads, layers, vocab = 12, 32, 4, 2, 50
    model = TransformerLM(vocab_size=vocab, d_model=d, num_layers=layers, num_heads=heads, ff_size=64, max_len=16)
    a = analyse(model, (t,), "long")
    attn = a.row("blocks.0.attn")
    # QK^T and attn @ V: 2 * B * heads * T * T * head_dim with B = 1 (causal masks are counted in full)
    assert attn.macs == 2 * 1 * heads * t * t * (d // heads)
    assert attn.total_macs == attn.macs + t * d * 3 * d + t * d * d  # + qkv and output projections
    per_block = attn.total_macs + t * d * 64 + t * 64 * d
    assert a.macs == layers * per_block + t * d * vocab


def test_sdpa_mult_adds_for_a_known_shape():
    from trainlab.analysis._macs import sdpa_macs

    q, k, v = torch.zeros(3, 2, 5, 8), torch.zeros(3, 2, 7, 8), torch.zeros(3, 2, 7, 4)
    assert sdpa_macs((q, k, v), {}) == 3 * 2 * 5 * 7 * (8 + 4)
    assert sdpa_macs((q,), {"key": k, "value": v}) == 3 * 2 * 5 * 7 * (8 + 4)

def test_summary_cli_prints_totals_and_writes_diagram(tmp_path, capsys):
    svg = tmp_path / "lenet.svg"
    assert main(["summary", "lenet5", "--input", "1x28x28", "--diagram", str(svg)]) == 0
    out = capsys.readouterr().out
    assert "61,706 (61,706 trainable, 0 frozen" in out and "weights-only file" in out
    assert svg.read_text().lstrip().startswith("<?xml")
    summary = summarize_model(*model_for_summary("lenet5", (1, 28, 28), 10))
    assert summary.anatomy.macs == 28 * 28 * 6 * 25 + 10 * 10 * 16 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10


def test_summary_graph_to_tensorboard(tmp_path):
    assert main(["summary", "mlp", "--input", "1x28x28", "--tensorboard", str(tmp_path / "tb")]) == 0
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("target, shape, message", [
    ("convnet", "28x28", "cannot build convnet for an input of 28x28"),
    ("transformer_lm", "3x28x28", "TransformerLM cannot take an input of 3x28x28 .*--dtype long"),
])
def test_an_input_of_the_wrong_rank_or_channels_is_a_clear_error(capsys, target, shape, message):
    from trainlab.cli import main

    assert main(["summary", target, "--input", shape]) != 0
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err


def test_a_language_model_recipe_is_summarised_on_token_ids_without_flags(capsys):
    """summary recipes/ptb-transformer.yaml used to crash without --input N --dtype long."""
    from conftest import REPO

    assert main(["summary", str(REPO / "recipes" / "ptb-transformer.yaml"), "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "TransformerLM" in out and "input [64]" in out


def test_transformer_summary_shows_its_attention_heads_and_scores(capsys):
    assert main(["summary", "transformer_lm", "--input", "16", "--dtype", "long", "--depth", "3"]) == 0
    out = capsys.readouterr().out
    attn = [ln for ln in out.splitlines() if "(CausalSelfAttention)" in ln]
    assert attn and all("attention: 4 heads x 64; q/k/v [1, 4, 16, 64]; scores [heads, T, T] = [4, 16, 16], causal"
                        in ln for ln in attn)
