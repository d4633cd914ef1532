"""What EventBridge sends a rule's target: the one shaping of an event that both the Step Functions
targets (:mod:`stepml.local.events`) and the Lambda targets (:mod:`stepml.local.run_events`) use."""

from __future__ import annotations

import json
from typing import Any


def target_input(target: dict[str, Any], event: dict[str, Any]) -> str:
    """What EventBridge sends ``target`` (an execution's input, a function's event): ``Input``,
    ``InputPath``, ``InputTransformer`` or the event itself."""
    if "Input" in target:
        return str(target["Input"])
    if target.get("InputPath"):
        node: Any = event
        for part in str(target["InputPath"]).lstrip("$").strip(".").split("."):
            if part:
                node = node.get(part) if isinstance(node, dict) else None
        return json.dumps(node)
    transformer = target.get("InputTransformer")
    if transformer:
        from moto.events.utils import EventTemplateParser

        transformed = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=event,  # type: ignore[arg-type]
        )
        return transformed if isinstance(transformed, str) else json.dumps(transformed)
    return json.dumps(event)
