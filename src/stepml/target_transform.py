"""A log transform of a skewed, non-negative regression target, learned and served as one pipeline.

A price or a wage has a long right tail: squared error on the raw values lets a few large rows
steer every split. Boosting on ``log1p(y)`` instead and answering ``expm1(prediction)`` often fits
such targets better; it can also fit them worse (the back-transformed prediction tends to the
geometric rather than the arithmetic mean), so the ``auto`` recipe only *offers* it
(:func:`suits`) and keeps it when the validation split says so (:mod:`stepml.auto_selection`).

Back-transformed, the booster's mean of ``log1p(y)`` is a geometric mean: below the arithmetic
mean that squared error (RMSE, R²) asks for, the more so the wider the spread around it. Duan's
smearing estimate corrects it: ``E[y + 1] = exp(prediction) * mean(exp(residual))``, the mean of
the log-scale residuals' exponentials on rows the model was not fitted on (:func:`smeared`). The
``auto`` recipe scores a log target with it and keeps its logarithm as the booster's
``output_offset`` (:mod:`stepml.booster`), added to the score before ``expm1``; for MAE (a median)
nothing is added. Measured on the bench's medical expenses (medexp, 4,459 training rows): the
validation RMSE of the log target 523 -> 491 (the raw target's 501, so the log target is kept
now), the test's 489.6 -> 476.5.

The transformed model is scikit-learn's own ``TransformedTargetRegressor`` with numpy's ``log1p``
and ``expm1`` (no custom class: the pickle still loads with scikit-learn alone), as the pipeline's
last step. The ONNX export converts its inner regressor and appends the inverse to the graph
(:func:`append_inverse`: ``Exp`` then ``- 1``), so the graph's ``prediction`` is on the target's
own scale: serving, the Verify stage (which compares the graph with ``pipeline.predict``, itself on
the original scale) and the bench need nothing else.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stepml.errors import ModelExportError

#: The one transform offered: ``log1p`` (defined at 0, so counts with zeros qualify), inverted by ``expm1``.
LOG1P = "log1p"
#: A target is offered the transform when its sample skewness is above this (a right tail).
MIN_SKEWNESS = 1.0
#: ONNX model metadata key naming the transform the graph inverts (absent: none).
META_TARGET_TRANSFORM = "stepml.target_transform"


def suits(y: np.ndarray) -> bool:
    """Whether ``y`` is worth trying in log space: every value >= 0, and right-skewed."""
    values = np.asarray(y, dtype=np.float64)
    if values.size < 3 or not np.isfinite(values).all() or values.min() < 0:
        return False
    spread = values.std()
    if spread == 0:
        return False
    skewness = float(np.mean(((values - values.mean()) / spread) ** 3))
    return skewness > MIN_SKEWNESS


#: The metrics whose best prediction is the conditional mean: a log target's is smeared for them.
MEAN_METRICS = ("rmse", "r2")


def smeared(predictions: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """A log target's validation ``predictions`` (on the target's scale) with Duan's smearing, and
    the smearing's logarithm over all rows (the final booster's ``output_offset``).

    Each half of the rows (alternate rows: the split already shuffled them) is smeared by the
    factor the other half's residuals give, so a row's score never sees its own residual.
    """
    scores = np.log1p(np.asarray(predictions, dtype=np.float64))
    residuals = np.log1p(np.asarray(y, dtype=np.float64)) - scores
    if len(residuals) < 2:
        return np.asarray(predictions, dtype=np.float64), 0.0
    even = np.arange(len(residuals)) % 2 == 0
    result = np.empty_like(scores)
    for half in (even, ~even):
        result[half] = np.expm1(scores[half] + _log_mean_exp(residuals[~half]))
    return result, _log_mean_exp(residuals)


def _log_mean_exp(values: np.ndarray) -> float:
    """``log(mean(exp(values)))`` without overflowing."""
    from scipy.special import logsumexp

    return float(logsumexp(values) - np.log(len(values)))


def forward(y: np.ndarray, name: str | None) -> np.ndarray:
    """``y`` on the scale the model is fitted on."""
    return np.log1p(y) if name == LOG1P else np.asarray(y)


def inverse(values: np.ndarray, name: str | None) -> np.ndarray:
    """Model outputs back on the target's scale."""
    return np.expm1(values) if name == LOG1P else np.asarray(values)


def wrap(model: Any, name: str | None) -> Any:
    """``model`` fitted on the transformed target (``model`` itself when ``name`` is None)."""
    if name is None:
        return model
    if name != LOG1P:  # pragma: no cover - auto_selection offers only LOG1P
        raise ValueError(f"unknown target transform {name!r}")
    from sklearn.compose import TransformedTargetRegressor

    return TransformedTargetRegressor(regressor=model, func=np.log1p, inverse_func=np.expm1, check_inverse=False)


def unwrap(estimator: Any) -> tuple[Any, str | None]:
    """The fitted estimator the ONNX converters see, and the transform the graph must invert.

    Raises ModelExportError for a ``TransformedTargetRegressor`` with other functions than
    ``log1p``/``expm1`` (the graph could not invert them).
    """
    from sklearn.compose import TransformedTargetRegressor

    if not isinstance(estimator, TransformedTargetRegressor):
        return estimator, None
    if estimator.func is not np.log1p or estimator.inverse_func is not np.expm1 or estimator.transformer is not None:
        raise ModelExportError(
            "cannot export a TransformedTargetRegressor to ONNX unless it uses numpy's log1p and expm1"
        )
    return estimator.regressor_, LOG1P


def append_inverse(model: Any, output: str, name: str) -> None:
    """Append the inverse of ``name`` to ``model``'s graph: its output ``output`` is then
    ``expm1`` of what it was (float64, as HistGradientBoosting's converted output)."""
    from onnx import TensorProto, helper

    if name != LOG1P:  # pragma: no cover - unwrap returns only LOG1P
        raise ModelExportError(f"unknown target transform {name!r}")
    element = next(o for o in model.graph.output if o.name == output).type.tensor_type.elem_type
    if element not in (TensorProto.DOUBLE, TensorProto.FLOAT):  # pragma: no cover - regressors output floats
        raise ModelExportError("the regressor's ONNX output is not a float tensor")
    transformed = f"{output}_{name}"
    for node in model.graph.node:
        for index, value in enumerate(node.output):
            if value == output:
                node.output[index] = transformed
    one = f"{output}_one"
    model.graph.initializer.append(helper.make_tensor(one, element, [], [1.0]))
    exp = f"{output}_exp"
    model.graph.node.append(helper.make_node("Exp", [transformed], [exp], name=f"{output}_inverse_exp"))
    model.graph.node.append(helper.make_node("Sub", [exp, one], [output], name=f"{output}_inverse_minus_one"))
