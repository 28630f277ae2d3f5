"""The evaluate stage's panel: one CPU module per evaluator per process, shared by the
evaluation key's fingerprint and the scoring, with the scores of a panel built afresh."""
import torch

from optiqa.study import evaluation


class _Set:
    """Three 112-px ground truths and their 28-px inputs (a test set as the stage reads it)."""

    lq_source = "made here"

    def __init__(self):
        g = torch.Generator().manual_seed(3)
        self.gt = [torch.rand(3, 112, 112, generator=g) for _ in range(3)]

    def __len__(self):
        return len(self.gt)

    def __getitem__(self, i):
        gt = self.gt[i]
        return {"key": f"im{i}", "gt": gt,
                "lq": torch.nn.functional.avg_pool2d(gt[None], 4)[0]}


def test_fingerprint_and_panel_share_one_module_with_the_same_scores(monkeypatch):
    from optiqa.assess.benchmark import metric_fingerprint
    from optiqa.nets.generators import BicubicUpsampler
    from optiqa.restore.scoring import create_scorers

    monkeypatch.setattr(evaluation, "_CPU_METRICS", {})
    evaluation.metric_identity.cache_clear()
    evaluation._scorers.cache_clear()
    names = ("psnr_y", "ssim", "gmsd", "niqe")
    created = []
    import optiqa.metrics as metrics
    real = metrics.create_metric
    monkeypatch.setattr(metrics, "create_metric", lambda n, **k: created.append(n) or real(n, **k))
    ids = evaluation.evaluator_identity(names)
    scorers, kinds = evaluation._scorers(names, "cpu")
    assert sorted(created) == sorted(names)    # each built once (psnr_y for its fingerprint)
    assert all(scorers[n] is evaluation._CPU_METRICS[n] for n in ("ssim", "gmsd", "niqe"))
    assert kinds == {"psnr_y": "fr", "ssim": "fr", "gmsd": "fr", "niqe": "nr"}
    assert list(scorers) == ["ssim", "gmsd", "niqe"]
    # the fingerprint is the one of a module built on its own
    assert ids["gmsd"] == metric_fingerprint("gmsd", real("gmsd"))
    # scores bit for bit those of a panel created afresh (under inference mode, as before)
    model = BicubicUpsampler(4)
    shared = evaluation.evaluate_model(model, 4, {"s": _Set()}, list(names), None,
                                       references=False)
    evaluation.metric_identity.cache_clear()   # nothing of this test's left for later ones
    evaluation._scorers.cache_clear()
    monkeypatch.setattr(evaluation, "_scorers",
                        lambda n, d: create_scorers(list(n), d, have_reference=True))
    fresh = evaluation.evaluate_model(model, 4, {"s": _Set()}, list(names), None,
                                      references=False)
    assert shared == fresh
    assert all(len(v) == 3 for v in shared["s"]["scores"].values())


def test_create_scorers_takes_built_modules_and_creates_the_rest():
    from optiqa.metrics import create_metric
    from optiqa.restore.scoring import create_scorers

    gmsd = create_metric("gmsd")
    scorers, kinds = create_scorers(["psnr_y", "gmsd", "ssim"], "cpu", True, built={"gmsd": gmsd})
    assert scorers["gmsd"] is gmsd and list(scorers) == ["gmsd", "ssim"]
    assert kinds["ssim"] == "fr" and kinds["psnr_y"] == "fr"
