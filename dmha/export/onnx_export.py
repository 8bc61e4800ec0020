"""Export a trained exp's model to ONNX: ``<exp>/onnx/model.onnx`` (+ ``model.int8.onnx`` on request).

What the graph holds: per-utterance CMN/CMVN (:func:`dmha.features.fbank.normalize_features`, the
config's ``norm``) and ``SpeakerNet.embed``, traced from the very torch code training and stage 4 run,
with dynamic batch and frame axes. Inputs are RAW log-mels ``feats (B, T, n_mels)`` zero-padded and
``lengths (B,)``; the graph masks padded frames as the torch model does, so a padded utterance gets its
alone-embedding. The log-mel front-end stays outside the graph, in numpy
(:func:`dmha.features.melbank.logmel_numpy`): it costs ~2 ms per second of audio on one core, next to
~100 ms for the paper model (bench/bench_onnx.py), and stage 4, which embeds stored features, needs
the graph without it.

The feature settings, the threshold and calibration of these weights, the scoring back-end and the
model section go into the model's metadata (:mod:`dmha.export.metadata`), so the .onnx file is all a
deployment needs.

Why the checks: users of other toolkits' exports report ONNX outputs that differ from PyTorch and
shape errors with batch/length changes. Every export is run on a padded batch of other shapes than the
one it was traced with and compared with torch before anything is written; a model that does not
export, or exports to a graph that disagrees, fails with one line and leaves no file behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike
from dmha.experiment import BEST_MODEL, load_exp, model_path, read_calibration, read_threshold
from dmha.export import metadata as meta
from dmha.export.winograd import WINOGRAD_MODES, winograd_tiles, with_winograd
from dmha.features.fbank import normalize_features

log = logging.getLogger(__name__)

MIN_OPSET = 14
DEFAULT_OPSET = 17
QUANTIZE_MODES = ("none", "int8")
#: Embeddings of the exported float graph vs torch on the check batch: lowest cosine accepted.
MIN_CHECK_COSINE = 0.99999


class EmbeddingGraph(nn.Module):
    """What is exported: raw log-mels + lengths -> per-utterance normalisation -> embedding."""

    def __init__(self, model: nn.Module, norm: str) -> None:
        super().__init__()
        self.model, self.norm = model, norm

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model.embed(normalize_features(feats, self.norm, lengths), lengths)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def _check_batch(n_mels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch of other size and lengths than the trace input, with varied (non-CMN'd) levels."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([331, 17, 128], dtype=torch.long)
    x = torch.randn(3, 331, n_mels, generator=gen) * 2 + 8
    return x, lengths


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.sum(a * b, axis=1)


def _export_float(graph: nn.Module, n_mels: int, path: Path, opset: int, what: str) -> None:
    feats = torch.randn(2, 200, n_mels) + 8
    lengths = torch.tensor([200, 150], dtype=torch.long)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about the model's python-side input checks
            torch.onnx.export(graph, (feats, lengths), str(path),
                              input_names=[meta.INPUT_FEATS, meta.INPUT_LENGTHS],
                              output_names=[meta.OUTPUT], opset_version=opset, dynamo=False,
                              dynamic_axes={meta.INPUT_FEATS: {0: "batch", 1: "frames"},
                                            meta.INPUT_LENGTHS: {0: "batch"}, meta.OUTPUT: {0: "batch"}})
    except Exception as e:  # the exporter raises many types; all mean "this model does not export"
        raise UserError(f"{what}: cannot export to ONNX opset {opset}: "
                        f"{type(e).__name__}: {_first_line(e)}") from None


def _add_metadata(path: Path, props: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(path))


def _run(path: Path, x: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run([meta.OUTPUT], {meta.INPUT_FEATS: x.numpy(), meta.INPUT_LENGTHS: lengths.numpy()})[0]


def calibration_features(data_dir: PathLike, n_utts: int = 64, max_frames: int = 400,
                         seed: int = 0) -> list[np.ndarray]:
    """Up to ``n_utts`` raw feature matrices of ``<data_dir>/feats.scp`` (a seeded random choice, each
    cut to ``max_frames``) to calibrate the int8 activation ranges with."""
    import kaldiio

    from dmha.common.fileio import read_kv

    scp = Path(data_dir) / "feats.scp"
    if not scp.is_file():
        raise UserError(f"{scp} not found; --calib-data needs a data dir with features "
                        "(steps/make_fbank.sh), e.g. the training set")
    table = read_kv(scp)
    keys = sorted(table)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(keys), size=min(n_utts, len(keys)), replace=False)) if keys else []
    out = []
    for i in chosen:
        try:
            mat = np.array(kaldiio.load_mat(table[keys[i]]), dtype=np.float32)
        except Exception as e:
            raise UserError(f"{scp}: cannot read features of '{keys[i]}' ({_first_line(e)})") from None
        out.append(mat[:max_frames])
    if not out:
        raise UserError(f"{scp} is empty; nothing to calibrate the int8 model with")
    return out


def _quantize_int8(src: Path, dst: Path, calib: list[np.ndarray]) -> None:
    """onnxruntime static quantisation (QDQ; int8 weights, uint8 activations) of the convolutions.

    Why static: dynamic quantisation turns the convolutions into ConvInteger, which onnxruntime runs
    ~5x SLOWER than float on one thread for the paper model (measured); static QDQ becomes QLinearConv
    (fast int8 kernels) but needs activation ranges, hence the calibration features.
    Why only Conv: the CNN is nearly all of the compute, and quantising the pooling/dense MatMul/Gemm
    as well cost far more accuracy (tiny test model: min cosine to float 0.16 vs 0.90 for Conv only).
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{meta.INPUT_FEATS: m[None], meta.INPUT_LENGTHS: np.array([m.shape[0]])}
                               for m in calib])

        def get_next(self):  # noqa: ANN201 (onnxruntime's interface)
            return next(self.items, None)

    pre = dst.with_name("pre_" + dst.name)
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
    quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["Conv"])
    pre.unlink(missing_ok=True)


def export_onnx(exp_dir: PathLike, *, model_file: str = BEST_MODEL, opset: int = DEFAULT_OPSET,
                quantize: str = "none", calib_data: PathLike | None = None,
                out_dir: PathLike | None = None, winograd: str = "auto") -> list[Path]:
    """Export ``<exp_dir>``'s model (``model_file``, relative to the exp dir: best.pt, or an average such as
    avg_last5.pt) to ``<out_dir>`` (default ``<exp_dir>/onnx``): ``model.onnx``, and ``model.int8.onnx``
    with ``quantize="int8"`` (calibrated on features of the data dir ``calib_data``). Returns the paths
    written. ``winograd`` (auto | off | all, :func:`dmha.export.winograd.winograd_tiles`) picks the
    3x3 convolutions the float graph computes as Winograd F(m x m, 3 x 3); the int8 model is always
    quantised from direct convolutions (its QLinearConv kernels are the fast path there).
    Everything is built in a temporary dir and moved into place only when the float graph has matched
    torch, so a failed export writes nothing."""
    if quantize not in QUANTIZE_MODES:
        raise UserError(f"--quantize {quantize!r}: expected one of {', '.join(QUANTIZE_MODES)}")
    if opset < MIN_OPSET:
        raise UserError(f"--opset {opset}: dmha models need opset >= {MIN_OPSET} (Einsum, per-axis Softmax)")
    if winograd not in WINOGRAD_MODES:
        raise UserError(f"--winograd {winograd!r}: expected one of {', '.join(WINOGRAD_MODES)}")
    if quantize == "int8" and not calib_data:
        raise UserError("--quantize int8 needs --calib-data <data-dir>: features (e.g. of the training set) "
                        "to calibrate the int8 activation ranges with")
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise UserError(f"ONNX export needs the packages onnx and onnxruntime ({e.name} missing): "
                        "pip install onnx onnxruntime (or dmha[onnx])") from None
    exp_dir = Path(exp_dir)
    calib = calibration_features(calib_data) if quantize == "int8" else []
    exp = load_exp(exp_dir, "cpu", model=model_file)
    ckpt_path = model_path(exp_dir, model_file)
    model = exp.model.float().eval()
    n_mels = int(exp.features.n_mels)
    pooling = exp.config["model"]["pooling"]
    what = f"{ckpt_path} ({pooling} pooling)"
    graph = EmbeddingGraph(model, exp.norm).eval()
    tiles = winograd_tiles(graph, winograd)

    out_dir = Path(out_dir) if out_dir else exp_dir / "onnx"
    tmp = out_dir.parent / f".{out_dir.name}.tmp.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        float_path = tmp / "model.onnx"
        _export_float(with_winograd(graph, tiles), n_mels, float_path, opset, what)
        # The back-end fitted for these weights goes with them (scores and threshold must agree); a
        # threshold computed for another model or back-end is not exported.
        backend = exp.backend.fingerprint() if exp.backend is not None else None
        threshold = read_threshold(exp_dir, exp.best, model_file, backend)
        calibration = read_calibration(exp_dir, exp.best, model_file, backend)
        props = {meta.FORMAT: meta.FORMAT_VERSION, meta.FEATURES: json.dumps(exp.features.to_dict()),
                 meta.MODEL: json.dumps(exp.config["model"]), meta.EMBED_DIM: str(int(model.embed_dim)),
                 meta.CHECKPOINT: Path(model_file).as_posix(), meta.MODEL_STEP: str(exp.best.get("step", "")),
                 meta.THRESHOLD: "" if threshold is None else repr(float(threshold)), meta.QUANTIZED: "none",
                 meta.BACKEND: "" if exp.backend is None else exp.backend.to_text(),
                 meta.CALIBRATION: "" if calibration is None else json.dumps(
                     {"scale": float(calibration.scale), "offset": float(calibration.offset)}),
                 meta.WINOGRAD: json.dumps(tiles) if tiles else ""}
        _add_metadata(float_path, props)
        x, lengths = _check_batch(n_mels, seed=0)
        with torch.no_grad():
            ref = graph(x, lengths).numpy()
        try:
            got = _run(float_path, x, lengths)
        except Exception as e:
            raise UserError(f"{what}: the exported graph does not run in onnxruntime ({_first_line(e)})") \
                from None
        worst = float(_cosines(ref, got).min()) if got.shape == ref.shape else -1.0
        if not worst >= MIN_CHECK_COSINE:
            raise UserError(f"{what}: the exported graph disagrees with torch (min cosine {worst:.6f} < "
                            f"{MIN_CHECK_COSINE} on a padded check batch); not exported")
        names = ["model.onnx"]
        if quantize == "int8":
            q_path = tmp / "model.int8.onnx"
            direct_path = float_path
            if tiles:  # quantise the direct convolutions (QLinearConv), not the Winograd products
                direct_path = tmp / "direct.onnx"
                _export_float(graph, n_mels, direct_path, opset, what)
            try:
                _quantize_int8(direct_path, q_path, calib)
            except Exception as e:
                raise UserError(f"{what}: int8 quantisation failed ({type(e).__name__}: {_first_line(e)})") \
                    from None
            _add_metadata(q_path, {**props, meta.QUANTIZED: "int8", meta.WINOGRAD: ""})
            cos_q = float(_cosines(ref, _run(q_path, x, lengths)).min())
            log.info("int8 model vs torch on the check batch: min cosine %.5f", cos_q)
            names.append("model.int8.onnx")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in names:
            os.replace(tmp / name, out_dir / name)
            written.append(out_dir / name)
        if quantize == "none":
            (out_dir / "model.int8.onnx").unlink(missing_ok=True)  # an int8 model of older weights
        log.info("exported %s: float graph (%d Winograd convolutions) vs torch min cosine %.7f on a padded "
                 "check batch", what, len(tiles), worst)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
