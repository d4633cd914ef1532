"""Per-dataset configuration: ``config/<dataset>.yaml`` in the data bucket (all keys optional).

Example::

    target: income          # default: the last column
    task: classification    # or regression; inferred from the target when absent
    drop_columns: [fnlwgt]  # ignored by training
    recipe: seed-a
    test_size: 0.2
    seed: 42
    min_rows: 20
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from stepml.errors import ConfigError

TASKS = ("classification", "regression")
RECIPES = ("seed-a",)


@dataclass(frozen=True)
class DatasetConfig:
    """The effective config of one dataset (file values over defaults)."""

    target: str | None = None
    task: str | None = None
    drop_columns: tuple[str, ...] = field(default_factory=tuple)
    recipe: str = "seed-a"
    test_size: float = 0.2
    seed: int = 42
    min_rows: int = 20

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["drop_columns"] = list(self.drop_columns)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "config") -> DatasetConfig:
        """Validate ``data`` (a parsed YAML mapping); a bad key or value names itself."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}"
            )
        values = dict(data)
        if values.get("target") is not None and not isinstance(values["target"], str):
            raise ConfigError(f"{source}: 'target' must be a column name")
        if values.get("task") is not None and values["task"] not in TASKS:
            raise ConfigError(f"{source}: 'task' must be one of {', '.join(TASKS)}")
        if "recipe" in values and values["recipe"] not in RECIPES:
            raise ConfigError(f"{source}: 'recipe' must be one of {', '.join(RECIPES)}")
        drop = values.get("drop_columns", [])
        if not isinstance(drop, list) or not all(isinstance(c, str) for c in drop):
            raise ConfigError(f"{source}: 'drop_columns' must be a list of column names")
        values["drop_columns"] = tuple(drop)
        test_size = values.get("test_size", 0.2)
        if not isinstance(test_size, (int, float)) or not 0.05 <= float(test_size) <= 0.5:
            raise ConfigError(f"{source}: 'test_size' must be a fraction between 0.05 and 0.5")
        values["test_size"] = float(test_size)
        for name in ("seed", "min_rows"):
            if name in values and (not isinstance(values[name], int) or values[name] < 0):
                raise ConfigError(f"{source}: {name!r} must be a non-negative integer")
        return cls(**values)


def parse_config(text: str | bytes, source: str = "config") -> DatasetConfig:
    """Parse a YAML config document; YAML syntax errors become a ConfigError with the line."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    return DatasetConfig.from_dict(data, source)


def dump_config(config: DatasetConfig) -> str:
    import yaml

    values = {k: v for k, v in config.to_dict().items() if v not in (None, [], ())}
    return yaml.safe_dump(values, sort_keys=False)
