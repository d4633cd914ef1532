"""Convert a fitted pipeline to ONNX and check that it predicts what scikit-learn predicts.

The pipeline is converted in two parts joined by a cast:

* the preprocessing steps (``ColumnTransformer``, imputers, encoders, scalers) with float64 inputs,
  so imputation and scaling are computed exactly as scikit-learn computes them;
* a ``Cast`` to the precision the estimator's trees compare in, then the estimator, converted by
  the library that knows it (skl2onnx for scikit-learn's models, onnxmltools for XGBoost, this
  module for LightGBM). scikit-learn's forests and XGBoost compare float32 features (skl2onnx
  adjusts the forests' thresholds), so they get float32 and match once the cast comes after the
  float64 preprocessing (float32 scaling flips splits); :func:`verify` still tolerates at most
  :data:`~stepml.onnx_verify.MAX_DIVERGENT_SHARE` of their rows (at least one) beyond tolerance.
  HistGradientBoosting and LightGBM compare float64 features with float64 thresholds: they get
  float64, and no row may diverge (:func:`compares_in_float64`; linear models and blends of them
  compute in float64 too). A value lying between a threshold and its float32 rounding otherwise
  takes the other branch: on a small numeric regression (10 features, 350 rows) a prediction
  moved by 1.4 (2.8 in a user's report), 50-100x the tolerance; on Unix timestamps (float32 holds
  them to 128 s) most rows moved.

  - HistGradientBoosting: skl2onnx's converter, its thresholds, leaf values and base values written
    as the double ``*_as_tensor`` attributes of ai.onnx.ml 3 (:class:`_ExactTreesContainer`);
    onnxruntime sums them in double and returns float32 scores.
  - LightGBM (the ``auto`` recipe's :mod:`stepml.booster`, a plain LightGBM model): onnxmltools'
    converter writes float32 thresholds, so :func:`_convert_booster` writes the graph from
    LightGBM's own dump instead: one ai.onnx.ml 5 ``TreeEnsemble`` (:func:`_booster_trees`:
    ``x <= threshold`` goes left, a category split's set of codes goes left as set membership, a
    missing value LightGBM's way), whose scores are float64 (ai.onnx.ml
    3's tree operators return float32), then the sigmoid or softmax in float64. onnxruntime then
    answers LightGBM's probabilities and values to ~1e-15 relative. It is registered with
    skl2onnx, so a blend's voting ensemble converts it as a member; the graph holding it imports
    ai.onnx.ml 5 (whose deprecated ``TreeEnsembleClassifier``/``Regressor`` it then cannot hold:
    no forest beside a booster).

Three gaps of skl2onnx are closed here: its ``SimpleImputer`` converter emits onnxruntime's
``Imputer`` op, which has no float64 kernel (we emit ``IsNaN`` + ``Where``), and its
HistGradientBoosting converter hands protobuf booleans where it wants ints and writes float64
thresholds as float32 (:class:`_ExactTreesContainer`). A missing category
needs nothing: it is the empty string in training and in serving alike
(:data:`stepml.onnx_model.MISSING_CATEGORY`).

:func:`verify` then runs the graph through onnxruntime on a whole data split, with the same input
builder serving uses, and raises :class:`~stepml.errors.ModelExportError` when classes or
probabilities / regression values disagree beyond a small tolerance.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from stepml import labelled_classifier, target_transform
from stepml.dateparts import model_features
from stepml.errors import ModelExportError
from stepml.onnx_model import (
    META_CLASSES,
    META_FEATURES,
    META_IMPUTED,
    META_INPUTS,
    META_TASK,
    NUMERIC_INPUT,
    PREDICTION,
    PROBABILITIES,
    TEXT_INPUT,
    block_features,
    serves_missing,
)
from stepml.onnx_verify import (
    Verification,
    compare,
)

#: Operator sets of the exported graph (onnxmltools converts up to opset 15; onnxruntime runs it).
TARGET_OPSET = {"": 15, "ai.onnx.ml": 3}
_registered = False


def _register_converters() -> None:
    """Replace skl2onnx's SimpleImputer converter by one that works in float64 and on strings."""
    global _registered
    if _registered:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    from skl2onnx.proto import onnx_proto
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
    from sklearn.impute import SimpleImputer

    def convert_imputer(scope: Any, operator: Any, container: Any) -> None:
        imputer = operator.raw_operator
        input_type = operator.inputs[0].type
        marker = imputer.missing_values
        if not (isinstance(input_type, DoubleTensorType) and isinstance(marker, float) and np.isnan(marker)):
            convert_sklearn_imputer(scope, operator, container)
            return
        values = concatenate_variables(scope, operator.inputs, container)
        fill = scope.get_unique_variable_name("imputed_values")
        statistics = np.asarray(imputer.statistics_, dtype=np.float64)
        container.add_initializer(fill, onnx_proto.TensorProto.DOUBLE, [statistics.size], statistics.tolist())
        missing = scope.get_unique_variable_name("is_missing")
        container.add_node("IsNaN", [values], [missing], name=scope.get_unique_operator_name("IsNaN"))
        container.add_node(
            "Where", [missing, fill, values], [operator.outputs[0].full_name],
            name=scope.get_unique_operator_name("Where"),
        )

    update_registered_converter(
        SimpleImputer, "SklearnSimpleImputer", calculate_sklearn_imputer_output_shapes, convert_imputer
    )
    # skl2onnx's HistGradientBoosting converter passes booleans (missing_go_to_left) as an integer
    # attribute, which protobuf 7 refuses, and writes float64 thresholds as float32 attributes: hand
    # it a container that turns the booleans into ints and keeps float64 values as double tensors.
    from skl2onnx.common._registration import get_converter, register_converter

    for alias in ("SklearnHistGradientBoostingClassifier", "SklearnHistGradientBoostingRegressor"):
        registered = get_converter(alias)
        register_converter(
            alias, _with_exact_trees(registered._fct), options=registered._options, overwrite=True
        )
    # LightGBM (the boosters, and a plain LightGBM model): its trees in float64 (_convert_booster),
    # registered with skl2onnx so that a voting ensemble converts them as members too
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    from stepml.booster import BoostedTreesClassifier, BoostedTreesRegressor

    classifier_options = {"zipmap": [True, False, "columns"], "nocl": [False], "output_class_labels": [False]}
    boosters: list[tuple[Any, str, Any, Any]] = [
        (BoostedTreesClassifier, "StepmlBoostedTreesClassifier", calculate_linear_classifier_output_shapes,
         classifier_options),
        (BoostedTreesRegressor, "StepmlBoostedTreesRegressor", calculate_linear_regressor_output_shapes, None),
    ]
    try:
        import lightgbm

        boosters += [
            (lightgbm.LGBMClassifier, "StepmlLGBMClassifier", calculate_linear_classifier_output_shapes,
             classifier_options),
            (lightgbm.LGBMRegressor, "StepmlLGBMRegressor", calculate_linear_regressor_output_shapes, None),
        ]
    except ImportError:  # pragma: no cover - lightgbm is installed wherever a booster was fitted
        pass
    for model, alias, shapes, options in boosters:
        update_registered_converter(model, alias, shapes, _convert_booster, options=options)
    _registered = True


#: Tree ensemble attributes that ai.onnx.ml 3 also takes as a tensor (``<name>_as_tensor``), in float64.
_DOUBLE_ATTRIBUTES = ("nodes_values", "nodes_hitrates", "target_weights", "class_weights", "base_values")
#: Which output of each tree ensemble operator holds the scores (onnxruntime makes them float32).
_SCORE_OUTPUT = {"TreeEnsembleRegressor": 0, "TreeEnsembleClassifier": 1}


class _ExactTreesContainer:
    """A converter container that fixes what skl2onnx's tree converters hand it.

    Lists of booleans become lists of ints. A tree ensemble converted for float64 inputs carries its
    thresholds, weights and base values as float64 arrays, which skl2onnx would write as float32
    attributes: they become the ``*_as_tensor`` double attributes of ai.onnx.ml 3, so onnxruntime
    compares float64 features with float64 thresholds, as scikit-learn's HistGradientBoosting does.
    onnxruntime returns the scores of such an operator as float32 (its schema says so); a Cast gives
    the float64 output the converter declared.
    """

    def __init__(self, scope: Any, container: Any) -> None:
        self._scope = scope
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, op_type: str, inputs: Any, outputs: Any, *args: Any, **attrs: Any) -> Any:
        for key, value in attrs.items():
            if isinstance(value, list) and any(isinstance(v, (bool, np.bool_)) for v in value):
                attrs[key] = [int(v) for v in value]
        values = attrs.get("nodes_values")
        if op_type not in _SCORE_OUTPUT or not (isinstance(values, np.ndarray) and values.dtype == np.float64):
            return self._container.add_node(op_type, inputs, outputs, *args, **attrs)
        from onnx import TensorProto, numpy_helper

        for key in _DOUBLE_ATTRIBUTES:
            if key in attrs:
                attrs[f"{key}_as_tensor"] = numpy_helper.from_array(np.asarray(attrs.pop(key), dtype=np.float64))
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        scores = outputs[_SCORE_OUTPUT[op_type]]
        single = self._scope.get_unique_variable_name(f"{scores}_float")
        outputs[_SCORE_OUTPUT[op_type]] = single
        node = self._container.add_node(op_type, inputs, outputs, *args, **attrs)
        self._container.add_node(
            "Cast", [single], [scores], name=self._scope.get_unique_operator_name("Cast"), to=TensorProto.DOUBLE
        )
        return node


def _with_exact_trees(convert: Any) -> Any:
    def convert_with_exact_trees(scope: Any, operator: Any, container: Any) -> Any:
        # op_version 3: the classifier converter otherwise rounds its float64 values to float32 itself
        return convert(scope, operator, _ExactTreesContainer(scope, container), op_version=3)

    return convert_with_exact_trees



#: ai.onnx.ml's ``TreeEnsemble`` (opset 5): double thresholds and leaf weights, and, unlike
#: ``TreeEnsembleRegressor``/``Classifier`` (whose outputs are float32), scores of its input's type.
BOOSTER_ML_OPSET = 5
#: LightGBM objectives whose raw score is the prediction (the boosters' own is ``regression``, L2).
_IDENTITY_OBJECTIVES = ("regression", "huber", "fair", "quantile", "mape")
#: LightGBM objectives fitted on the log of the mean: the prediction is ``exp`` of the raw score
#: (``loss: poisson`` for counts, ``loss: gamma`` for positive amounts).
_EXP_OBJECTIVES = ("poisson", "gamma", "tweedie")
#: ``TreeEnsemble``'s ``nodes_modes``: ``x <= threshold`` is true; ``x`` is one of the node's set.
BRANCH_LEQ, BRANCH_MEMBER = 0, 6


def _lightgbm_model(estimator: Any) -> tuple[Any, int | None]:
    """The fitted ``lightgbm`` model behind a booster, and the rounds its ``predict`` uses."""
    from stepml.booster import BoostedTreesClassifier, BoostedTreesRegressor

    if isinstance(estimator, (BoostedTreesClassifier, BoostedTreesRegressor)):
        return estimator.model_, int(estimator.n_iter_)
    best = getattr(estimator, "best_iteration_", None)  # a plain LGBMModel predicts with its best round
    return estimator, int(best) if best else None


def _booster_trees(model: Any, rounds: int | None) -> tuple[dict[str, Any], int, str]:
    """The attributes of one ai.onnx.ml 5 ``TreeEnsemble`` that sums the raw scores of LightGBM's
    trees (first ``rounds`` rounds; None: all), the trees per round (one per class for multiclass),
    and the objective.

    Thresholds and leaf values are LightGBM's doubles, from its JSON dump (printed to round-trip).
    A split sends ``x <= threshold`` left, as LightGBM's does; a missing value goes where LightGBM
    sends it: its default side when the split learnt one (``missing_type`` NaN), else where 0.0
    goes (LightGBM reads NaN as 0.0 when its training column had none). A category split
    (``decision_type`` ``==``, :mod:`stepml.booster`'s ``categorical_features``) sends the codes of
    its set (``threshold`` "3||7||12") left: ``BRANCH_MEMBER``, its sets in ``membership_values``,
    each followed by a NaN; LightGBM sends any other code, a negative one or a missing value right,
    and so does the graph (a NaN is in no set). The encoder's codes are whole numbers, which
    LightGBM would truncate and membership compares exactly: a fraction never reaches the trees.
    """
    from onnx import numpy_helper

    dump = model.booster_.dump_model(num_iteration=rounds)
    objective = str(dump.get("objective", ""))
    if dump.get("average_output"):
        raise ModelExportError("cannot export a LightGBM random forest (boosting 'rf') to ONNX")
    per_round = int(dump["num_tree_per_iteration"])
    feature: list[int] = []
    split: list[float] = []
    missing_left: list[int] = []
    true_id: list[int] = []
    true_leaf: list[int] = []
    false_id: list[int] = []
    false_leaf: list[int] = []
    leaf_target: list[int] = []
    leaf_weight: list[float] = []
    roots: list[int] = []
    modes: list[int] = []
    members: list[float] = []  # each category split's set, then a NaN

    def add_leaf(node: dict[str, Any], target: int) -> int:
        leaf_target.append(target)
        leaf_weight.append(float(node["leaf_value"]))
        return len(leaf_weight) - 1

    def add_split(feature_id: int, threshold: float, missing_goes_left: bool, mode: int) -> int:
        feature.append(feature_id)
        modes.append(mode)
        split.append(threshold)
        missing_left.append(int(missing_goes_left))
        for side in (true_id, true_leaf, false_id, false_leaf):
            side.append(0)
        return len(feature) - 1

    for index, tree in enumerate(dump["tree_info"]):
        target = index % per_round
        root = tree["tree_structure"]
        roots.append(len(feature))  # the root is the first split placed
        if "split_feature" not in root:  # a tree of one leaf: a split whose both sides reach it
            placed = add_split(0, 0.0, False, BRANCH_LEQ)
            true_id[placed] = false_id[placed] = add_leaf(root, target)
            true_leaf[placed] = false_leaf[placed] = 1
            continue
        # depth first; each child's index is written into its parent's slot once it is placed
        pending: list[tuple[dict[str, Any], list[int] | None, int]] = [(root, None, 0)]
        while pending:
            node, slots, parent = pending.pop()
            if "split_feature" not in node:
                assert slots is not None
                slots[parent] = add_leaf(node, target)
                (true_leaf if slots is true_id else false_leaf)[parent] = 1
                continue
            if node["decision_type"] == "==":  # a category split: the categories listed go left
                placed = add_split(int(node["split_feature"]), 0.0, False, BRANCH_MEMBER)
                members.extend([*(float(code) for code in str(node["threshold"]).split("||")), math.nan])
            elif node["decision_type"] == "<=" and node["missing_type"] in ("None", "NaN"):
                threshold = float(node["threshold"])
                left = bool(node["default_left"]) if node["missing_type"] == "NaN" else 0.0 <= threshold
                placed = add_split(int(node["split_feature"]), threshold, left, BRANCH_LEQ)
            else:
                raise ModelExportError(
                    f"cannot export a LightGBM split of type {node['decision_type']!r} with missing values "
                    f"{node['missing_type']!r} to ONNX (only numeric splits, zero_as_missing off, and "
                    "category splits)"
                )
            if slots is not None:
                slots[parent] = placed
            pending.append((node["right_child"], false_id, placed))
            pending.append((node["left_child"], true_id, placed))
    attributes = {
        "n_targets": per_round,
        "aggregate_function": 1,  # SUM
        "post_transform": 0,  # NONE: the sigmoid / softmax follow in float64
        "tree_roots": roots,
        "nodes_featureids": feature,
        "nodes_splits": numpy_helper.from_array(np.asarray(split, dtype=np.float64)),
        "nodes_modes": numpy_helper.from_array(np.asarray(modes, dtype=np.uint8)),
        "nodes_missing_value_tracks_true": missing_left,
        "nodes_truenodeids": true_id,
        "nodes_trueleafs": true_leaf,
        "nodes_falsenodeids": false_id,
        "nodes_falseleafs": false_leaf,
        "leaf_targetids": leaf_target,
        "leaf_weights": numpy_helper.from_array(np.asarray(leaf_weight, dtype=np.float64)),
    }
    if members:
        attributes["membership_values"] = numpy_helper.from_array(np.asarray(members, dtype=np.float64))
    return attributes, per_round, objective


def _convert_booster(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx converter of :class:`~stepml.booster.BoostedTreesClassifier` /
    ``BoostedTreesRegressor`` (and a plain LightGBM model): LightGBM's trees in float64 (one
    ai.onnx.ml 5 ``TreeEnsemble``, :func:`_booster_trees`), then its link in float64: a sigmoid
    (binary), a softmax (multiclass), ``exp`` (poisson, gamma, tweedie) or none (regression), a
    regressor's ``output_offset`` added to the score before it."""
    from onnx import TensorProto

    estimator = operator.raw_operator
    model, rounds = _lightgbm_model(estimator)
    attributes, per_round, objective = _booster_trees(model, rounds)
    features = operator.inputs[0].full_name
    if operator.inputs[0].type.to_onnx_type().tensor_type.elem_type != TensorProto.DOUBLE:
        cast = scope.get_unique_variable_name("features_double")
        container.add_node("Cast", [features], [cast], name=scope.get_unique_operator_name("Cast"),
                           to=TensorProto.DOUBLE)
        features = cast

    def name(kind: str) -> str:
        return scope.get_unique_variable_name(kind)

    raw = name("raw_scores")
    # skl2onnx refuses to write ai.onnx.ml 5 into a model: the node is declared at 3 and
    # _convert_estimator raises the model's ai.onnx.ml version to 5 once converted
    container.add_node("TreeEnsemble", [features], [raw], name=scope.get_unique_operator_name("TreeEnsemble"),
                       op_domain="ai.onnx.ml", op_version=TARGET_OPSET["ai.onnx.ml"], **attributes)
    if not hasattr(estimator, "classes_"):
        offset = float(getattr(estimator, "output_offset", 0.0))
        if offset:  # the booster's output_offset (a log target's smearing), added before the link
            shifted, constant = name("shifted_scores"), name("output_offset")
            container.add_initializer(constant, TensorProto.DOUBLE, [], [offset])
            container.add_node("Add", [raw, constant], [shifted], name=scope.get_unique_operator_name("Add"))
            raw = shifted
        if objective.startswith(_EXP_OBJECTIVES):
            link = "Exp"
        elif objective.startswith(_IDENTITY_OBJECTIVES):
            link = "Identity"
        else:
            raise ModelExportError(f"cannot export a LightGBM regressor of objective {objective!r} to ONNX")
        container.add_node(link, [raw], [operator.outputs[0].full_name], name=scope.get_unique_operator_name(link))
        return
    probabilities = operator.outputs[1].full_name
    if objective.startswith("binary") and per_round == 1:
        scale = next((float(p.split(":")[1]) for p in objective.split() if p.startswith("sigmoid:")), 1.0)
        if scale != 1.0:
            scaled = name("scaled_scores")
            factor = name("sigmoid_scale")
            container.add_initializer(factor, TensorProto.DOUBLE, [], [scale])
            container.add_node("Mul", [raw, factor], [scaled], name=scope.get_unique_operator_name("Mul"))
            raw = scaled
        positive, negative, one = name("positive"), name("negative"), name("one")
        container.add_node("Sigmoid", [raw], [positive], name=scope.get_unique_operator_name("Sigmoid"))
        container.add_initializer(one, TensorProto.DOUBLE, [], [1.0])
        container.add_node("Sub", [one, positive], [negative], name=scope.get_unique_operator_name("Sub"))
        container.add_node("Concat", [negative, positive], [probabilities],
                           name=scope.get_unique_operator_name("Concat"), axis=1)
    elif objective.startswith("multiclass") and not objective.startswith("multiclassova"):
        container.add_node("Softmax", [raw], [probabilities], name=scope.get_unique_operator_name("Softmax"),
                           axis=1)
    else:
        raise ModelExportError(f"cannot export a LightGBM classifier of objective {objective!r} to ONNX")
    # the label: the most probable class (ties: the first, as numpy's argmax)
    classes = list(estimator.classes_)
    best, table = name("best_class"), name("classes")
    if all(isinstance(c, str) for c in classes):
        container.add_initializer(table, TensorProto.STRING, [len(classes)], [c.encode() for c in classes])
    else:
        container.add_initializer(table, TensorProto.INT64, [len(classes)], [int(c) for c in classes])
    container.add_node("ArgMax", [probabilities], [best], name=scope.get_unique_operator_name("ArgMax"),
                       axis=1, keepdims=0)
    container.add_node("Gather", [table, best], [operator.outputs[0].full_name],
                       name=scope.get_unique_operator_name("Gather"), axis=0)


def _split_pipeline(pipeline: Any) -> tuple[Any, Any]:
    from sklearn.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        raise ModelExportError(
            f"cannot export {type(pipeline).__name__} to ONNX: expected a Pipeline of "
            "preprocessing steps followed by an estimator"
        )
    steps = pipeline.steps
    preprocessing = steps[0][1] if len(steps) == 2 else Pipeline(steps[:-1])
    return preprocessing, steps[-1][1]


def compares_in_float64(estimator: Any) -> bool:
    """Whether the estimator's trees compare float64 features with float64 thresholds:
    scikit-learn's HistGradientBoosting and LightGBM (the boosters of :mod:`stepml.booster`, a
    plain LightGBM model), alone or every member of a voting ensemble. Forests and XGBoost compare
    float32 features. A linear model (:mod:`stepml.model_family`) computes in float64 as
    scikit-learn does; a member pipeline (a blend's) counts as its estimator."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV

    in_float64 = (HistGradientBoostingClassifier, HistGradientBoostingRegressor, LogisticRegression, Ridge, RidgeCV)
    return all(_is_lightgbm(model) or isinstance(model, in_float64) for model in _models_of(estimator))


def _models_of(estimator: Any) -> Iterator[Any]:
    """The models an estimator predicts with: itself, or each voting member's (a member pipeline's
    last step), however deeply nested."""
    from sklearn.ensemble import VotingClassifier, VotingRegressor
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, (VotingClassifier, VotingRegressor)):
        for member in estimator.estimators_:
            yield from _models_of(member)
    elif isinstance(estimator, Pipeline):
        yield from _models_of(estimator.steps[-1][1])
    else:
        yield estimator


def _is_lightgbm(estimator: Any) -> bool:
    """A booster of :mod:`stepml.booster` or a plain LightGBM model (converted by :func:`_convert_booster`)."""
    from stepml.booster import BoostedTreesClassifier, BoostedTreesRegressor

    return isinstance(estimator, (BoostedTreesClassifier, BoostedTreesRegressor)) or (
        type(estimator).__module__.startswith("lightgbm") and hasattr(estimator, "booster_")
    )


def _holds_lightgbm(estimator: Any) -> bool:
    """Whether the estimator is, or a voting ensemble's member (pipeline) holds, a LightGBM model."""
    return any(_is_lightgbm(model) for model in _models_of(estimator))


def _convert_estimator(estimator: Any, n_features: int, task: str) -> Any:
    """The estimator alone as ONNX, on one input named ``features``: float64 when its trees compare
    in float64 (:func:`compares_in_float64`), else float32."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    tensor_type = DoubleTensorType if compares_in_float64(estimator) else FloatTensorType
    initial_types = [("features", tensor_type([None, n_features]))]
    if type(estimator).__module__.startswith("xgboost"):
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType as MlFloatTensorType

        initial_types = [("features", MlFloatTensorType([None, n_features]))]
        return convert_xgboost(estimator, initial_types=initial_types, target_opset=TARGET_OPSET[""])
    from skl2onnx import convert_sklearn

    options = {id(estimator): {"zipmap": False}} if task == "classification" else None
    model = convert_sklearn(estimator, initial_types=initial_types, target_opset=TARGET_OPSET, options=options)
    if _holds_lightgbm(estimator):  # its trees are ai.onnx.ml 5's TreeEnsemble (_convert_booster)
        if any(node.op_type in _SCORE_OUTPUT for node in model.graph.node):
            raise ModelExportError("cannot export LightGBM beside another tree model (ai.onnx.ml 5 has "
                                   "no TreeEnsembleClassifier / TreeEnsembleRegressor)")
        for entry in model.opset_import:
            if entry.domain == "ai.onnx.ml":
                entry.version = BOOSTER_ML_OPSET
    return model


def _rename_outputs(model: Any, task: str) -> None:
    outputs = model.graph.output
    if task == "classification":
        wanted = {outputs[1].name: PROBABILITIES}  # skl2onnx/onnxmltools: (label, probabilities)
        keep = [outputs[1]]
    else:
        wanted = {outputs[0].name: PREDICTION}
        keep = [outputs[0]]
    for node in model.graph.node:  # producers, and consumers (a voting ensemble's label reads them)
        for names in (node.output, node.input):
            for index, name in enumerate(names):
                if name in wanted:
                    names[index] = wanted[name]
    for output in keep:
        output.name = wanted[output.name]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    _prune(model)


def _prune(model: Any) -> None:
    """Drop the nodes and initializers no output needs (e.g. a voting ensemble's label branch)."""
    needed = {output.name for output in model.graph.output}
    kept = []
    for node in reversed(model.graph.node):
        if needed & set(node.output):
            kept.append(node)
            needed |= set(node.input)
    del model.graph.node[:]
    model.graph.node.extend(reversed(kept))
    unused = [initializer for initializer in model.graph.initializer if initializer.name not in needed]
    for initializer in unused:
        model.graph.initializer.remove(initializer)


def export(pipeline: Any, schema: list[dict[str, Any]], task: str) -> bytes:
    """The fitted pipeline as a serialized ONNX model (inputs: one block per kind of feature, see
    :mod:`stepml.onnx_model`)."""
    import onnx
    from onnx import compose, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    request_schema = schema
    schema = model_features(schema)  # the graph's features: a date column's parts are numbers
    reserved = sorted({f["name"] for f in schema} & {NUMERIC_INPUT, TEXT_INPUT})
    if reserved:
        raise ModelExportError(
            f"feature {reserved[0]!r} has a name the ONNX export reserves for its input blocks: rename the column"
        )
    _register_converters()
    preprocessing, estimator = _split_pipeline(pipeline)
    estimator, inverse = target_transform.unwrap(estimator)  # a log-target model: its inner regressor
    estimator, labels = labelled_classifier.unwrap(estimator)  # a booster of class codes: its labels
    initial_types = [
        (f["name"], DoubleTensorType([None, 1]) if f["kind"] == "numeric" else StringTensorType([None, 1]))
        for f in schema
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            front = convert_sklearn(preprocessing, initial_types=initial_types, target_opset=TARGET_OPSET)
            n_features = int(estimator.n_features_in_)
            back = _convert_estimator(estimator, n_features, task)
    except Exception as exc:  # each converter raises its own kinds of errors
        raise ModelExportError(
            f"cannot convert {type(estimator).__name__} (after {type(preprocessing).__name__}) to "
            f"ONNX: {type(exc).__name__}: {exc}"[:2000]
        ) from exc

    _restore_input_names(front, [f["name"] for f in schema])
    # The preprocessing ends in float64 where a number is among its inputs (text alone: its codes
    # end in float32, skl2onnx's cast after concatenating them); the boosters and linear models take
    # float64, forests and XGBoost compare float32 (see the module docstring).
    double = compares_in_float64(estimator)
    element = onnx.TensorProto.DOUBLE if double else onnx.TensorProto.FLOAT
    transformed = front.graph.output[0].name
    ends_in = front.graph.output[0].type.tensor_type.elem_type
    cast = helper.make_node("Identity", [transformed], ["features_cast"]) if ends_in == element else helper.make_node(
        "Cast", [transformed], ["features_cast"], to=element
    )
    front.graph.node.append(cast)
    del front.graph.output[:]
    front.graph.output.append(helper.make_tensor_value_info("features_cast", element, [None, n_features]))
    back = compose.add_prefix(back, "model_")
    _rename_outputs(back, task)
    if inverse is not None:  # the graph answers on the target's own scale
        target_transform.append_inverse(back, PREDICTION, inverse)
    _align_opsets(front, back)
    merged = compose.merge_models(front, back, io_map=[("features_cast", back.graph.input[0].name)])
    blocks = block_features(request_schema)
    _block_inputs(merged, blocks)
    _fold(merged)

    metadata = {
        META_TASK: task,
        META_FEATURES: json.dumps([f["name"] for f in schema]),
        META_INPUTS: json.dumps(blocks),
        META_IMPUTED: json.dumps(imputed_columns(preprocessing)),
    }
    if inverse is not None:
        metadata[target_transform.META_TARGET_TRANSFORM] = inverse
    if task == "classification":
        classes = estimator.classes_ if labels is None else labels
        metadata[META_CLASSES] = json.dumps([_plain(c) for c in classes])
    onnx.helper.set_model_props(merged, metadata)
    onnx.checker.check_model(merged)
    return merged.SerializeToString()


def imputed_columns(preprocessing: Any) -> list[str]:
    """Columns a ColumnTransformer sends through a SimpleImputer first (they may be missing)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    if not isinstance(preprocessing, ColumnTransformer):
        return []
    found: list[str] = []
    for _, transformer, columns in preprocessing.transformers_:
        first = transformer.steps[0][1] if isinstance(transformer, Pipeline) else transformer
        if isinstance(first, SimpleImputer) and isinstance(columns, list):
            found.extend(str(c) for c in columns)
    return found


def with_nullable(schema: list[dict[str, Any]], pipeline: Any, recipe: str) -> list[dict[str, Any]]:
    """The feature schema with, per feature, whether the fitted pipeline serves it missing
    (``nullable``; ``required`` is its opposite), as :func:`stepml.onnx_model.can_serve_missing` says."""
    preprocessing, _ = _split_pipeline(pipeline)
    imputed = set(imputed_columns(preprocessing))
    annotated = []
    for spec in schema:
        nullable = serves_missing(spec, imputed, recipe)
        annotated.append({**spec, "nullable": nullable, "required": not nullable})
    return annotated


def _restore_input_names(model: Any, names: list[str]) -> None:
    """skl2onnx renames inputs such as ``educational-num``; serving feeds them by feature name."""
    renamed = {
        graph_input.name: name
        for graph_input, name in zip(model.graph.input, names, strict=True)
        if graph_input.name != name
    }
    for graph_input in model.graph.input:
        graph_input.name = renamed.get(graph_input.name, graph_input.name)
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            if name in renamed:
                node.input[index] = renamed[name]


def _block_inputs(model: Any, blocks: dict[str, list[str]]) -> None:
    """Replace the graph's per-feature ``[rows, 1]`` inputs by one ``[rows, n]`` block per kind,
    split back into the features inside the graph (a ``Split`` node per block)."""
    from onnx import TensorProto, helper

    taken = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
    taken |= {name for node in model.graph.node for name in node.output}
    clash = sorted(taken & set(blocks))
    if clash:  # skl2onnx names its tensors after the features and the operators
        raise ModelExportError(f"the converted graph already has a tensor named {clash[0]!r}, the name of an input block")
    features = {graph_input.name: graph_input for graph_input in model.graph.input}
    del model.graph.input[:]
    front: list[Any] = []
    for block, names in blocks.items():
        element = features[names[0]].type.tensor_type.elem_type
        model.graph.input.append(helper.make_tensor_value_info(block, element, [None, len(names)]))
        if len(names) == 1:
            front.append(helper.make_node("Identity", [block], names, name=f"{block}_identity"))
            continue
        sizes = f"{block}_sizes"
        model.graph.initializer.append(helper.make_tensor(sizes, TensorProto.INT64, [len(names)], [1] * len(names)))
        front.append(helper.make_node("Split", [block, sizes], names, axis=1, name=f"{block}_split"))
    for node in reversed(front):
        model.graph.node.insert(0, node)


def _fold(model: Any) -> None:
    """Drop the nodes that only move data, as the converters and :func:`_block_inputs` leave them:
    an ``Identity``; a ``Concat`` of a ``Split``'s outputs, all of them, in order, on the same axis
    (the numeric block split per column, then joined again); a ``Reshape`` to ``[-1, 1]`` of a
    ``LabelEncoder``'s output whose input is one column split off a block (already ``[rows, 1]``).

    Each costs a kernel launch per request (~1-3 us, and cache lines the trees then miss); the
    answers do not change (Verify compares the folded graph with scikit-learn on every model).
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    outputs = {output.name for output in graph.output}
    producer = {name: node for node in graph.node for name in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}

    def attribute(node: Any, name: str, default: Any) -> Any:
        return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)

    def one_column(name: str) -> bool:  # a [rows, 1] column of a block split by _block_inputs
        split = producer.get(name)
        sizes = constants.get(split.input[1]) if split is not None and len(split.input) > 1 else None
        return (split is not None and split.op_type == "Split" and attribute(split, "axis", 0) == 1
                and sizes is not None and bool((sizes == 1).all()))

    alias: dict[str, str] = {}  # a dropped node's output -> the tensor that holds the same values
    dropped: set[int] = set()
    for node in graph.node:
        if node.output[0] in outputs:
            continue
        if node.op_type == "Identity":
            alias[node.output[0]] = node.input[0]
            dropped.add(id(node))
        elif node.op_type == "Concat":
            split = producer.get(node.input[0])
            if (split is not None and split.op_type == "Split" and list(split.output) == list(node.input)
                    and attribute(split, "axis", 0) == attribute(node, "axis", None)
                    and all(readers.get(name) == 1 and name not in outputs for name in split.output)):
                alias[node.output[0]] = split.input[0]
                dropped |= {id(node), id(split)}
        elif node.op_type == "Reshape":
            encoder = producer.get(node.input[0])
            shape = constants.get(node.input[1])
            if (encoder is not None and encoder.op_type == "LabelEncoder" and one_column(encoder.input[0])
                    and shape is not None and shape.tolist() == [-1, 1]):
                alias[node.output[0]] = node.input[0]
                dropped.add(id(node))

    def resolved(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    kept = [node for node in graph.node if id(node) not in dropped]
    for node in kept:
        node.input[:] = [resolved(name) for name in node.input]
    del graph.node[:]
    graph.node.extend(kept)
    _prune(model)


def _align_opsets(front: Any, back: Any) -> None:
    """merge_models wants one IR version and one version per operator domain."""
    versions: dict[str, int] = {}
    for model in (front, back):
        for entry in model.opset_import:
            versions[entry.domain] = max(versions.get(entry.domain, 0), entry.version)
    for model in (front, back):
        del model.opset_import[:]
        for domain, version in sorted(versions.items()):
            entry = model.opset_import.add()
            entry.domain, entry.version = domain, version
        model.ir_version = max(front.ir_version, back.ir_version)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


#: Most test rows the ONNX graph is checked on ("Verify ONNX export"): a seeded random sample of a
#: larger split. Every row costs the reference JSON about 190 bytes and Verify ~2 KB of memory at
#: its peak (2M uploaded rows: a 75 MB reference, over 500 MB held); 20,000 rows still hold
#: hundreds with a missing value, where the graph and scikit-learn could part.
PARITY_ROWS = 20_000


def parity_rows(frame: Any, seed: int) -> Any:
    """The rows of ``frame`` (a test split) that :func:`reference` records: all of them up to
    :data:`PARITY_ROWS`, else a random sample (seeded, in the split's order)."""
    if len(frame) <= PARITY_ROWS:
        return frame
    return frame.sample(n=PARITY_ROWS, random_state=seed).sort_index()


def reference(pipeline: Any, frame: Any, schema: list[dict[str, Any]], task: str) -> dict[str, Any]:
    """What :func:`stepml.onnx_verify.compare` checks the ONNX graph against: the split's feature
    values (JSON-able, None for missing), scikit-learn's outputs on them, and whether the graph
    computes in float64 as the estimator does (``exact``: :func:`compares_in_float64`; then no row
    may diverge).

    Computed where scikit-learn runs (the Train stage); the comparison itself needs only numpy and
    onnxruntime, so it runs in its own light function (the Lambda layer cannot hold both stacks).
    """
    from stepml.preprocessing import to_model_frame

    features = to_model_frame(frame, schema)
    # A date column is recorded as its strings: the comparison derives their parts as serving does.
    columns = {
        f["name"]: [None if _is_missing(v) else str(v) if f["kind"] == "date" else _plain(v)
                    for v in (frame if f["kind"] == "date" else features)[f["name"]].tolist()]
        for f in schema
    }
    if task == "classification":
        expected = np.asarray(pipeline.predict_proba(features), dtype=np.float64)
    else:
        expected = np.asarray(pipeline.predict(features), dtype=np.float64).reshape(-1, 1)
    return {"task": task, "columns": columns, "expected": expected.tolist(), "exact": _exact(pipeline)}


def _exact(pipeline: Any) -> bool:
    """Whether the exported graph of ``pipeline`` computes in float64 as it does (:func:`compares_in_float64`
    of the estimator the converters see)."""
    try:
        _, estimator = _split_pipeline(pipeline)
        estimator, _ = target_transform.unwrap(estimator)
    except ModelExportError:  # export refuses it anyway
        return False
    return compares_in_float64(labelled_classifier.unwrap(estimator)[0])


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def verify(model_bytes: bytes, pipeline: Any, frame: Any, schema: list[dict[str, Any]], task: str) -> Verification:
    """Compare the ONNX model with ``pipeline`` on every row of ``frame`` (both steps in one call)."""
    return compare(model_bytes, reference(pipeline, frame, schema, task), schema)
