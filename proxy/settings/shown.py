"""How a setting's default is shown (in `--help`, the configuration reference and the example file)."""

from __future__ import annotations

import json

from pydantic import BaseModel
from pydantic.fields import FieldInfo


def shown_default(spec: FieldInfo) -> str:
    default = spec.get_default(call_default_factory=True)
    if default is None:
        return ""
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, dict):  # a JSON setting
        return json.dumps(
            {k: v.model_dump(exclude_none=True) if isinstance(v, BaseModel) else v for k, v in default.items()}
        )
    if isinstance(default, float) and default.is_integer() and abs(default) >= 1000:
        return str(int(default))
    return str(default)
