"""A latency model fitted to a handful of measurements, with a calibrated interval for every prediction.

Why this shape: latency is close to *additive* over the layers a target runs (each kernel costs about
the same wherever it sits), so the backbone is a linear model of additive graph features (op counts,
MACs, bytes, the roofline estimate) fitted in milliseconds with relative-error weights; what a linear
model misses (a kernel that is cheaper next to another, a compiler that removes dead branches) is left
to extremely randomised trees fitted to the log-ratio of the residuals. Both pieces are scikit-learn's
(``Ridge``, ``ExtraTreesRegressor``): well kept, deterministic under a seed, fast on a few hundred
points.

Uncertainty comes from a bootstrap ensemble of that two-stage model, and is *calibrated* rather than
trusted: every measured point is out of bag for about a third of the members, and the out-of-bag
errors, divided by the ensemble's spread there, give the multiplier that makes the interval hold
``level`` of the time (the jackknife+-after-bootstrap idea of Kim, Xu and Barber, 2020). With ten
points the multiplier is the largest out-of-bag error ratio, i.e. the interval is honest but wide; it
narrows as measurements accumulate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

#: Latencies below this fraction of the median get no more weight than one at it (near-zero latencies
#: of degenerate models would otherwise dominate a relative-error fit).
#: The standard normal (its inverse CDF: the stdlib's, so a search imports no scipy).
_Z = NormalDist()
_WEIGHT_FLOOR = 0.5
#: Smallest relative spread used to scale errors (a perfectly agreeing ensemble is not certainty).
_SD_FLOOR = 0.01
#: The linear stage's prediction is kept above this fraction of the median latency (it may go negative).
_BASE_FLOOR = 0.01


@dataclass(frozen=True)
class Prediction:
    """Predicted latencies of a batch of architectures.

    Attributes:
        median_ms: Point predictions (the ensemble's geometric mean), milliseconds.
        lo_ms: Lower end of the interval at ``level``.
        hi_ms: Upper end of the interval at ``level``.
        log_sd: Calibrated predictive standard deviation of ``log(latency)`` (≈ relative error).
        level: Intended coverage of ``[lo_ms, hi_ms]`` (e.g. 0.9).
        n_measurements: Measurements the model was fitted on.
    """

    median_ms: np.ndarray
    lo_ms: np.ndarray
    hi_ms: np.ndarray
    log_sd: np.ndarray
    level: float
    n_measurements: int

    def quantile(self, q: float) -> np.ndarray:
        """The ``q`` quantile of the predictive distribution (log-normal around the median)."""
        return self.median_ms * np.exp(_Z.inv_cdf(q) * self.log_sd)

    @property
    def rel_halfwidth(self) -> np.ndarray:
        """Half the interval's width relative to the median (0.1 = about ±10 %)."""
        return (self.hi_ms - self.lo_ms) / (2.0 * self.median_ms)


class _Member:
    """One bootstrap member: a prior, weighted ridge on the additive features, trees on what is left.

    The prior is the one candidate feature (the roofline estimate, MACs, bytes moved, ...) whose
    one-parameter fit ``y ~ a + b * x`` explains the member's measurements best: the roofline for the
    NPU it models, MACs on a host CPU. Every member chooses on its own bootstrap sample, so the
    ensemble's spread includes the doubt about which one is right.
    """

    def __init__(self, *, alpha: float, trees: int, priors: tuple[int, ...], seed: int) -> None:
        from sklearn.ensemble import ExtraTreesRegressor
        from sklearn.linear_model import Ridge

        self.priors = priors
        self.prior: int | None = None
        self.ridge = Ridge(alpha=alpha)
        self.trees = ExtraTreesRegressor(
            n_estimators=trees, min_samples_leaf=1, max_features=0.5, random_state=seed, n_jobs=1
        )
        self.prior_coef = (0.0, 0.0)

    def _prior(self, X: np.ndarray) -> np.ndarray:
        a, b = self.prior_coef
        return a + b * X[:, self.prior] if self.prior is not None else np.full(len(X), a)

    def _fit_prior(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        """Stage 0: the best single-feature fit (weighted least squares, slope >= 0), or the mean."""
        mean = float(np.average(y, weights=w))
        best = (float(np.average(((mean - y) / y) ** 2, weights=w)), None, (mean, 0.0))
        for j in self.priors:
            if np.ptp(X[:, j]) <= 0:
                continue
            A = np.c_[np.ones(len(X)), X[:, j]] * np.sqrt(w)[:, None]
            a, b = np.linalg.lstsq(A, y * np.sqrt(w), rcond=None)[0]
            if b <= 0:
                continue
            err = float(np.average(((a + b * X[:, j] - y) / y) ** 2, weights=w))
            if err < best[0]:
                best = (err, j, (float(a), float(b)))
        _, self.prior, self.prior_coef = best

    def fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> _Member:
        self._fit_prior(X, y, w)
        # Stage 1: every additive feature, ridge-shrunk towards the prior.
        self.ridge.fit(X, y - self._prior(X), sample_weight=w)
        base = self._base(X)
        # Stage 2: what is left, as a log-ratio.
        self.trees.fit(X, np.log(y) - np.log(base))
        return self

    def _base(self, X: np.ndarray) -> np.ndarray:
        return np.maximum(self._prior(X) + self.ridge.predict(X), _BASE_FLOOR)

    def log_predict(self, X: np.ndarray) -> np.ndarray:
        return np.log(self._base(X)) + self.trees.predict(X)


class LatencyModel:
    """Fits latencies (ms) to feature rows; predicts with a calibrated interval.

    Args:
        level: Intended coverage of the prediction interval (0.9 = the true latency falls inside 9
            times out of 10).
        members: Bootstrap members of the ensemble (their spread is the uncertainty).
        trees: Extremely randomised trees per member.
        alpha: Ridge penalty on standardised features (larger = closer to the prior).
        prior: Index (or indices) of the features that may serve as the prior (e.g. the roofline
            estimate, MACs); each member takes the one that fits its measurements best. ``None``: none.
        seed: Seeds the bootstrap and the trees.
    """

    def __init__(
        self,
        *,
        level: float = 0.9,
        members: int = 16,
        trees: int = 12,
        alpha: float = 1.0,
        prior: int | Sequence[int] | None = None,
        seed: int = 0,
    ) -> None:
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {level}")
        self.level = float(level)
        self.members_n = int(members)
        self.trees = int(trees)
        self.alpha = float(alpha)
        self.priors = () if prior is None else ((prior,) if isinstance(prior, int) else tuple(prior))
        self.seed = int(seed)
        self.members: list[_Member] = []
        self.n = 0
        self.noise_var = 0.0

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mu) / self.sd

    def fit(self, X: np.ndarray, y: np.ndarray) -> LatencyModel:
        """Fit to ``X`` (n × d features) and ``y`` (n latencies in ms, > 0); needs n >= 3."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X must be n x d with n = len(y); got {X.shape} and {y.shape}")
        if len(y) < 3:
            raise ValueError(f"a latency model needs at least 3 measurements, got {len(y)}")
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise ValueError("latencies must be finite and positive")
        self.mu = X.mean(axis=0)
        sd = X.std(axis=0)
        self.sd = np.where(sd > 0, sd, 1.0)
        self.y_ref = float(np.median(y))
        Xs, yr = self._scale(X), y / self.y_ref
        w = 1.0 / np.maximum(yr, _WEIGHT_FLOOR) ** 2
        rng = np.random.default_rng(self.seed)
        n = len(y)
        self.members, bags = [], []
        for m in range(self.members_n):
            idx = rng.integers(0, n, n)
            while len(np.unique(idx)) < min(3, n):
                idx = rng.integers(0, n, n)
            member = _Member(alpha=self.alpha, trees=self.trees, priors=self.priors, seed=self.seed + m)
            self.members.append(member.fit(Xs[idx], yr[idx], w[idx]))
            bags.append(np.bincount(idx, minlength=n) > 0)
        self.n = n
        self.multiplier = self._calibrate(Xs, np.log(yr), np.array(bags))
        return self

    def _log_members(self, Xs: np.ndarray) -> np.ndarray:
        return np.stack([m.log_predict(Xs) for m in self.members])  # members x n

    def _calibrate(self, Xs: np.ndarray, log_y: np.ndarray, in_bag: np.ndarray) -> float:
        """Noise variance and the multiplier that makes intervals cover ``level`` of out-of-bag errors.

        The ensemble's spread is model uncertainty only; what the members agree on but get wrong (timing
        noise, a rounded latency) shows up as out-of-bag error beyond the spread and is added as a
        constant variance. The multiplier is the conformal quantile of the normalised errors.
        """
        preds = self._log_members(Xs)
        errors, spreads = [], []
        for i in range(len(log_y)):
            oob = ~in_bag[:, i]
            if oob.sum() < 2:
                continue
            errors.append(log_y[i] - preds[oob, i].mean())
            spreads.append(
                max(float(preds[oob, i].std() if oob.sum() >= 3 else preds[:, i].std()), _SD_FLOOR)
            )
        self.noise_var = 0.0
        if len(errors) < 3:
            return float(_Z.inv_cdf(0.5 + self.level / 2.0)) * 3.0
        e, sp = np.asarray(errors), np.asarray(spreads)
        # Robust (median-based): a few degenerate architectures must not widen every interval.
        self.noise_var = float(max(0.0, np.median(e**2) / 0.455 - np.median(sp**2)))
        r = np.sort(np.abs(e) / np.sqrt(sp**2 + self.noise_var))
        k = min(len(r), int(np.ceil((len(r) + 1) * self.level)))  # the conformal rank
        return float(max(r[k - 1], 1e-6))

    def predict(self, X: np.ndarray) -> Prediction:
        """Point predictions and intervals for feature rows ``X`` (m × d)."""
        if not self.members:
            raise RuntimeError("fit the model before predicting")
        preds = self._log_members(self._scale(np.asarray(X, dtype=np.float64)))
        mu = preds.mean(axis=0)
        spread = np.maximum(preds.std(axis=0), _SD_FLOOR)
        half = self.multiplier * np.sqrt(spread**2 + self.noise_var)
        z = float(_Z.inv_cdf(0.5 + self.level / 2.0))
        median = self.y_ref * np.exp(mu)
        return Prediction(
            median_ms=median,
            lo_ms=median * np.exp(-half),
            hi_ms=median * np.exp(half),
            log_sd=half / z,
            level=self.level,
            n_measurements=self.n,
        )
