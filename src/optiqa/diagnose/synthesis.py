"""MAD competition and eigendistortions of optiqa metrics, synthesised by plenoptic.

plenoptic (the Simoncelli lab's library, MIT licence, ``pip install plenoptic``) implements both
syntheses for any differentiable PyTorch function; this module only adapts our metric contract
to what it expects:

* :class:`MetricDistance` for :class:`plenoptic.MADCompetition`, which takes metrics called as
  ``d(reference, image)`` (note the order) that return a scalar that is 0 for identical images:
  ``d = metric.loss(clip(image), reference) - metric.loss(reference, reference)``. The clip keeps
  the metric's [0, 1] input contract while plenoptic's synthesis steps outside it; plenoptic's
  range penalty (``penalize_range``) pulls those pixels back.
* :class:`LossGradient` for :class:`plenoptic.Eigendistortion`, which takes a *model* ``f`` and
  finds the extreme eigenvectors of its Fisher matrix ``J^T J`` (``J = df/dx``) at an image. With
  ``f(x) = dL/dx``, the gradient of the loss ``L = metric.loss(., ref)``, ``J`` is the Hessian
  ``H`` of the loss and ``J^T J = H^2``: same eigenvectors, eigenvalues squared. At ``x = ref``
  (a minimum of ``L``) ``L(ref + e) ~ L(ref) + e^T H e / 2``, so the top eigenvector is the
  distortion of a given size the metric finds most visible and the bottom one the least visible
  (Berardino et al., "Eigen-distortions of hierarchical representations", NeurIPS 2017). We
  report ``|lambda_H| = sqrt(lambda_F)`` and the sign of ``v^T H v``. Metrics whose loss is not
  twice differentiable at the reference (a cone ``L ~ |e|`` such as L1, GMSD, NLPD; PSNR's
  logarithm) have no Hessian there and are refused with the reason.

Wang & Simoncelli, "Maximum differentiation (MAD) competition", J. Vision 8(12):8, 2008.
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from optiqa.core.errors import ConfigError, InputError, OptiqaError
from optiqa.metrics import create_metric

log = logging.getLogger(__name__)


def require_plenoptic():
    """Import plenoptic, or raise a one-line error that says how to install it."""
    try:
        import plenoptic
    except ImportError:
        raise OptiqaError("MAD competition and eigendistortions need plenoptic, which is not "
                          "installed: pip install 'optiqa[diagnose]' (or pip install plenoptic)"
                          ) from None
    return plenoptic


@contextlib.contextmanager
def _plenoptic_output(progress: bool):
    """plenoptic prints convergence lines and draws tqdm bars: keep results alone on stdout
    (its lines go to the log and, after the block, into the yielded list) and drop the bars
    unless ``progress``."""
    out, lines = io.StringIO(), []
    err = contextlib.nullcontext() if progress else contextlib.redirect_stderr(io.StringIO())
    with contextlib.redirect_stdout(out), err, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield lines
    lines += out.getvalue().splitlines()
    for line in lines:
        log.info("plenoptic: %s", line)
    for w in caught:
        log.info("plenoptic: %s", w.message)


def _metric(metric, device):
    return create_metric(metric, device=device) if isinstance(metric, str) else metric


class MetricDistance(nn.Module):
    """An optiqa metric as plenoptic's MAD metric: ``d(reference, image) >= 0``, 0 iff equal."""

    def __init__(self, metric):
        super().__init__()
        self.metric = metric
        self._offset_for = None
        self._offset = None

    def _loss_at(self, reference: torch.Tensor) -> torch.Tensor:
        if self._offset_for is None or not torch.equal(self._offset_for, reference):
            with torch.no_grad():
                self._offset = self.metric.loss(reference, reference)
            self._offset_for = reference.detach().clone()
        return self._offset

    def forward(self, reference: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        reference = reference.clamp(0, 1)
        return self.metric.loss(image.clamp(0, 1), reference) - self._loss_at(reference)


class LossGradient(nn.Module):
    """``x -> d metric.loss(x, ref) / dx`` as a plenoptic model (differentiable when ``x`` is)."""

    def __init__(self, metric, ref: torch.Tensor):
        super().__init__()
        self.metric = metric
        self.register_buffer("ref", ref.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        track = x.requires_grad
        with torch.enable_grad():
            leaf = x if track else x.detach().requires_grad_(True)
            loss = self.metric.loss(leaf, self.ref)
            (g,) = torch.autograd.grad(loss, leaf, create_graph=track)
        # contiguous: a metric's backward may hand back a strided gradient (e.g. through the
        # grey/Y matrix product), and plenoptic flattens this output with .view()
        return g.contiguous()


def hessian_vector_product(metric, ref: torch.Tensor, x: torch.Tensor, v: torch.Tensor
                           ) -> torch.Tensor:
    """``H v`` with ``H`` the Hessian of ``metric.loss(., ref)`` at ``x`` (double backward)."""
    leaf = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(metric.loss(leaf, ref), leaf, create_graph=True)
    (hv,) = torch.autograd.grad((g * v).sum(), leaf, allow_unused=True)
    return torch.zeros_like(v) if hv is None else hv


# -- MAD competition -------------------------------------------------------------------------
@dataclass(frozen=True)
class MADOptions:
    """``noise_std``: the initial image is ``ref + noise_std * N(0, 1)`` (so its MSE is
    ``noise_std^2`` before clipping), the same for all four syntheses (``seed``). ``steps`` of
    plenoptic's Adam (amsgrad) at ``lr``. plenoptic holds the fixed metric ``d_f`` with the
    penalty ``lambda (d_f - d_f0)^2``; ``tradeoff`` sets ``lambda`` directly, else
    ``lambda = stiffness * |d_o0| / d_f0^2`` (``d_o0``, ``d_f0``: both distances of the initial
    image), so that a relative drift ``delta`` of the fixed metric costs
    ``stiffness * delta^2 * |d_o0|``: scale-free, unlike plenoptic's automatic choice, which
    balances the two metrics' magnitudes and did not hold the fixed one in our trials.
    ``penalty_lambda``: weight of plenoptic's [0, 1] range penalty."""

    noise_std: float = 0.1
    steps: int = 300
    lr: float = 0.01
    seed: int = 0
    stiffness: float = 1e3
    tradeoff: float | None = None
    penalty_lambda: float = 0.1
    stop_criterion: float = 1e-6
    device: str = "cpu"

    def __post_init__(self):
        if not self.noise_std > 0:
            raise ConfigError(f"noise_std must be > 0, got {self.noise_std}", option="noise_std")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}", option="steps")


@dataclass
class MADImage:
    optimized: str                  # the metric pushed to its min or max
    fixed: str                      # the metric held at its initial value
    minmax: str                     # "min" or "max"
    image: torch.Tensor             # (1, 3, H, W), clipped to [0, 1]
    values: dict[str, float]        # both distances to the reference, of the clipped image
    fixed_drift: float              # |fixed distance - its target| / target
    tradeoff: float
    steps_run: int

    @property
    def name(self) -> str:
        return f"{self.minmax}_{self.optimized}"


@dataclass
class MADResult:
    metric_a: str
    metric_b: str
    reference: torch.Tensor         # (1, 3, H, W)
    initial: torch.Tensor           # (1, 3, H, W), clipped
    initial_values: dict[str, float]
    initial_mse: float
    images: list[MADImage] = field(default_factory=list)  # min a, max a, min b, max b
    options: MADOptions = MADOptions()


def mad_competition(metric_a, metric_b, ref: torch.Tensor, options: MADOptions = MADOptions(),
                    progress: bool = False) -> MADResult:
    """The four MAD images of two metrics at ``ref`` (``(1, 3, H, W)`` or ``(3, H, W)``): each
    metric minimised and maximised while the other is held at its value for the initial image."""
    po = require_plenoptic()
    ref = _one_image(ref).to(options.device)
    ma, mb = _metric(metric_a, options.device), _metric(metric_b, options.device)
    if ma.info.name == mb.info.name:
        raise ConfigError(f"MAD competition needs two different metrics, got {ma.info.name} "
                          "twice", option="metric")
    dist = {ma.info.name: MetricDistance(ma), mb.info.name: MetricDistance(mb)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        initial = (ref + options.noise_std * torch.randn_like(ref))
    clipped = initial.clamp(0, 1)
    with torch.no_grad():
        init_values = {n: float(d(ref, clipped)) for n, d in dist.items()}
    result = MADResult(ma.info.name, mb.info.name, ref.cpu(), clipped.cpu(), init_values,
                       float((clipped - ref).pow(2).mean()), options=options)
    for optimized, fixed in ((ma.info.name, mb.info.name), (mb.info.name, ma.info.name)):
        for minmax in ("min", "max"):
            result.images.append(_synthesise(po, dist, optimized, fixed, minmax, ref, initial,
                                             options, progress))
    return result


def _synthesise(po, dist, optimized, fixed, minmax, ref, initial, options, progress):
    with torch.no_grad():
        d_o0, d_f0 = (float(dist[n](ref, initial.clamp(0, 1))) for n in (optimized, fixed))
    if d_f0 <= 0:
        raise InputError(f"{fixed} sees no difference between the initial image and the "
                         "reference; raise the initial noise", option="noise_std")
    tradeoff = options.tradeoff or options.stiffness * max(abs(d_o0), 1e-12) / d_f0 ** 2
    with _plenoptic_output(progress), torch.random.fork_rng(devices=[]):
        mad = po.MADCompetition(ref, dist[optimized], dist[fixed], minmax,
                                metric_tradeoff_lambda=tradeoff,
                                penalty_lambda=options.penalty_lambda)
        # plenoptic starts from ref + initial_noise * randn_like(ref): same seed, same image
        torch.manual_seed(options.seed)
        mad.setup(initial_noise=options.noise_std, optimizer_kwargs={"lr": options.lr})
        if not torch.allclose(mad.initial_image, initial):
            raise RuntimeError("plenoptic's initial image differs from ours (its seeding changed)")
        mad.synthesize(max_iter=options.steps, stop_criterion=options.stop_criterion)
    image = mad.mad_image.detach().clamp(0, 1)
    with torch.no_grad():
        values = {n: float(d(ref, image)) for n, d in dist.items()}
    target = mad.reference_metric_loss[0].item() if len(mad.reference_metric_loss) else math.nan
    drift = abs(values[fixed] - target) / abs(target) if target else math.inf
    log.info("MAD %s %s (%s fixed): %s, drift of %s %.3g", minmax, optimized, fixed, values,
             fixed, drift)
    return MADImage(optimized, fixed, minmax, image.cpu(), values, drift,
                    float(mad.metric_tradeoff_lambda), len(mad.losses))


# -- eigendistortions ------------------------------------------------------------------------
@dataclass(frozen=True)
class EigenOptions:
    """plenoptic's power method: ``max_iter`` iterations per end of the spectrum, stopping when
    the eigenvalue changes by less than ``stop_criterion``; ``epsilon``: the largest RMS of the
    distortion added to the reference in the figure and the saved images (lowered so that no
    pixel moves by more than 0.25)."""

    max_iter: int = 200
    stop_criterion: float = 1e-7
    epsilon: float = 0.05
    seed: int = 0
    device: str = "cpu"


@dataclass
class EigenResult:
    metric: str
    reference: torch.Tensor             # (1, 3, H, W)
    distortions: list[torch.Tensor]     # [top, bottom], unit-norm (1, 3, H, W)
    eigenvalues: list[float]            # |eigenvalue of the Hessian| for top, bottom
    curvature_signs: list[int]          # sign of v^T H v
    perturbed: list[torch.Tensor]       # clip(ref + epsilon * v / RMS(v)), top, bottom
    perturbed_losses: list[float]       # metric.loss of each perturbed image
    epsilon: float                      # RMS of the distortion in the perturbed images
    converged: list[bool]               # plenoptic's stop criterion reached (top, bottom)
    options: EigenOptions = EigenOptions()


def check_curvature(metric, ref: torch.Tensor, seed: int = 0) -> None:
    """Refuse metrics without a finite, non-zero Hessian at the reference (one ``H v`` probe;
    zero also comes from roots whose derivative formula is set to 0 at 0, e.g. GMSD's)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(ref.shape, generator=g).to(ref)
    hv = hessian_vector_product(metric, ref, ref, v)
    found = "non-finite values" if not torch.isfinite(hv).all() else (
        "zero" if hv.abs().max() == 0 else None)
    if found:
        raise InputError(
            f"{metric.info.name} has no usable Hessian at the reference (a Hessian-vector probe "
            f"gave {found}): eigendistortions need a loss that is twice differentiable there, "
            "and L1 (piecewise linear), PSNR (a logarithm) and metrics that take roots of error "
            "energies (GMSD, NLPD, MAD) are not; `optiqa diagnose local` shows their shape",
            option="metric")


def eigendistortions(metric, ref: torch.Tensor, options: EigenOptions = EigenOptions(),
                     progress: bool = False) -> EigenResult:
    """Top and bottom eigendistortions of ``metric`` at ``ref`` (see the module docstring)."""
    po = require_plenoptic()
    ref = _one_image(ref).to(options.device)
    m = _metric(metric, options.device)
    check_curvature(m, ref, options.seed)
    model = LossGradient(m, ref).eval()
    with _plenoptic_output(progress) as lines, torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        eig = po.Eigendistortion(ref.clone(), model)
        eig.synthesize(method="power", k=1, max_iter=options.max_iter,
                       stop_criterion=options.stop_criterion)
    converged = [any(line.startswith(end) and "Stop criterion" in line for line in lines)
                 for end in ("Top", "Bottom")]
    vecs = [eig.eigendistortions[i:i + 1].detach() for i in range(2)]  # top, bottom
    vecs = [v / v.norm() for v in vecs]
    n = ref.numel()
    # Both distortions get the same RMS (the same MSE), small enough that no pixel of either
    # moves by more than 0.25: a localised eigenvector scaled to RMS 0.05 would be clipped away.
    peak = max(float(v.abs().max()) for v in vecs) * math.sqrt(n)
    epsilon = min(options.epsilon, 0.25 / peak)
    values, signs, perturbed, losses = [], [], [], []
    for v, lam in zip(vecs, eig.eigenvalues.tolist()):
        values.append(math.sqrt(max(lam, 0.0)))
        rayleigh = float((v * hessian_vector_product(m, ref, ref, v)).sum())
        signs.append(1 if rayleigh > 0 else (-1 if rayleigh < 0 else 0))
        img = (ref + epsilon * math.sqrt(n) * v).clamp(0, 1)
        perturbed.append(img.cpu())
        with torch.no_grad():
            losses.append(float(m.loss(img, ref)))
    return EigenResult(m.info.name, ref.cpu(), [v.cpu() for v in vecs], values, signs, perturbed,
                       losses, epsilon, converged, options)


def _one_image(ref: torch.Tensor) -> torch.Tensor:
    ref = ref[None] if ref.ndim == 3 else ref
    if ref.ndim != 4 or ref.shape[0] != 1 or ref.shape[1] != 3:
        raise InputError(f"one RGB reference (3, H, W) is needed, got {tuple(ref.shape)}")
    return ref.float()
