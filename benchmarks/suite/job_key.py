"""Job keys: the hash of a job's canonical configuration."""
from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(',', ':'), default=str)


def config_key(obj: Any) -> str:
    """Stable key of a configuration: the first 16 hex digits of its canonical JSON's sha256."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]
