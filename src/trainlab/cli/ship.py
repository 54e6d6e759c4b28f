"""`trainlab export` and `trainlab serve`: shipping a trained model (trainlab.inference)."""

from __future__ import annotations

from ._common import add_force, add_trust, nonneg_float, positive_int


def add_export(sub):
    from ..inference.export import FORMATS, TOLERANCE

    ex = sub.add_parser("export", help="write a checkpoint as ONNX, TorchScript, safetensors or a state_dict file, "
                                       "with a model card, checked against the PyTorch model")
    ex.add_argument("checkpoint")
    ex.add_argument("--format", required=True, choices=list(FORMATS))
    ex.add_argument("--out", help="file to write (default: the run's export/<checkpoint>.<ext>)")
    ex.add_argument("--tolerance", type=nonneg_float, default=TOLERANCE,
                    help="largest absolute difference from the PyTorch model allowed (default %(default)g)")
    ex.add_argument("--check-samples", type=positive_int, default=16, help="real inputs the check runs on")
    add_trust(ex)
    add_force(ex)
    return ex


def cmd_export(args) -> int:
    from .. import api
    from ..inference.export import default_output, export
    from ..outputs import choose_output

    default = default_output(args.checkpoint, args.format)
    if args.out is None:
        default.parent.mkdir(parents=True, exist_ok=True)
    out = choose_output(args.out, default, args.force)
    model = api.load(args.checkpoint, trust_class_path=args.trust_class_path)
    res = export(model, args.format, out, checkpoint=args.checkpoint, tolerance=args.tolerance,
                 samples=args.check_samples)
    p = res.parity
    print(f"exported {args.format}: {res.path} ({res.path.stat().st_size / 1e6:.2f} MB)")
    for extra in res.extra:
        print(f"metadata: {extra}")
    print(f"model card: {res.card}")
    print(f"check on {p['samples']} {'inputs from the run' if p['inputs'] == 'data' else 'random inputs'}: "
          f"max abs diff {p['max_abs_diff']:.3g} (tolerance {p['tolerance']:g}), "
          f"top-1 agreement {p['top1_agreement']:.1%} of {p['positions']}")
    return 0


def add_serve(sub):
    sv = sub.add_parser("serve", help="an HTTP API and a web page for a checkpoint or an ONNX export")
    sv.add_argument("model", help="a checkpoint (.pt) or an ONNX export (.onnx)")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s: this machine only)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--max-upload-mb", type=nonneg_float, default=20.0, help="largest upload accepted")
    sv.add_argument("--max-pixels", type=positive_int, default=40_000_000,
                    help="largest image (width x height) decoded; larger ones are refused before decoding")
    sv.add_argument("--batch-ms", type=nonneg_float, default=5.0,
                    help="micro-batching: how long the first request waits for others to join it (0: off)")
    sv.add_argument("--max-batch", type=positive_int, default=64, help="micro-batching: largest batch")
    sv.add_argument("--threads", type=positive_int, default=None,
                    help="intra-op threads of the model's forward pass (default: PyTorch's, one per core)")
    sv.add_argument("--device", default="cpu")
    add_trust(sv)
    return sv


def cmd_serve(args) -> int:
    from ..inference.serve import ServeSettings, run_server

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    settings = ServeSettings(max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels, batch_ms=args.batch_ms,
                             max_batch=args.max_batch, device=args.device, trust_class_path=args.trust_class_path,
                             threads=args.threads)
    run_server(args.model, settings, host=args.host, port=args.port)
    return 0
