"""The baseline of lm_throughput.py: pytorch/examples' word_language_model, as its scripts do it.

Copied in structure from pytorch/examples (BSD-3-Clause): ``data.py``'s Dictionary/Corpus,
``main.py``'s batchify / get_batch / repackage_hidden and its training loop (manual SGD
update after clipping, ``loss.item()`` every batch), and ``model.py``'s RNNModel (seq-first,
log_softmax + NLLLoss). Only what the benchmark needs is kept; nothing here is trainlab.
"""

import gzip
import os

import torch
import torch.nn as nn
import torch.nn.functional as F


class Dictionary:
    def __init__(self):
        self.word2idx = {}
        self.idx2word = []

    def add_word(self, word):
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self):
        return len(self.idx2word)


def _open(path):  # the shared PTB copy is gzipped; the reference reads plain files
    return gzip.open(path, "rt", encoding="utf8") if path.endswith(".gz") else open(path, "r", encoding="utf8")


class Corpus:
    def __init__(self, path, names=("ptb.train.txt.gz", "ptb.valid.txt.gz", "ptb.test.txt.gz")):
        self.dictionary = Dictionary()
        self.train = self.tokenize(os.path.join(path, names[0]))
        self.valid = self.tokenize(os.path.join(path, names[1]))
        self.test = self.tokenize(os.path.join(path, names[2]))

    def tokenize(self, path):
        with _open(path) as f:
            for line in f:
                words = line.split() + ["<eos>"]
                for word in words:
                    self.dictionary.add_word(word)
        with _open(path) as f:
            idss = []
            for line in f:
                words = line.split() + ["<eos>"]
                ids = []
                for word in words:
                    ids.append(self.dictionary.word2idx[word])
                idss.append(torch.tensor(ids).type(torch.int64))
            ids = torch.cat(idss)
        return ids


class RNNModel(nn.Module):
    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=False):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.init_weights()
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

    def init_weights(self):
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        decoded = decoded.view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


def batchify(data, bsz, device):
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    data = data.view(bsz, -1).t().contiguous()
    return data.to(device)


def get_batch(source, i, bptt):
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i:i + seq_len]
    target = source[i + 1:i + 1 + seq_len].view(-1)
    return data, target


def repackage_hidden(h):
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def train_steps(model, train_data, batch_size, bptt, lr, clip=0.25):
    """main.py's train() loop, one yield (the batch loss) per step; ``lr`` is a callable so a
    caller can anneal it between epochs as main.py does."""
    criterion = nn.NLLLoss()
    model.train()
    hidden = model.init_hidden(batch_size)
    for i in range(0, train_data.size(0) - 1, bptt):
        data, targets = get_batch(train_data, i, bptt)
        model.zero_grad()
        hidden = repackage_hidden(hidden)
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr())
        yield loss.item()  # main.py reads the loss every batch


def train_batches(model, train_data, n_batches, batch_size, bptt, lr=20.0, clip=0.25):
    """main.py's train(), stopped after ``n_batches``; returns (mean loss, vocabulary size)."""
    losses = [loss for _, loss in zip(range(n_batches), train_steps(model, train_data, batch_size, bptt,
                                                                    lambda: lr, clip))]
    return sum(losses) / n_batches, model.ntoken

def evaluate(model, data_source, batch_size, bptt):
    """main.py's evaluate(): mean NLL over the split (batchified with ``batch_size``)."""
    model.eval()
    criterion = nn.NLLLoss()
    total_loss = 0.0
    hidden = model.init_hidden(batch_size)
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, bptt):
            data, targets = get_batch(data_source, i, bptt)
            output, hidden = model(data, hidden)
            hidden = repackage_hidden(hidden)
            total_loss += len(data) * criterion(output, targets).item()
    return total_loss / (len(data_source) - 1)
