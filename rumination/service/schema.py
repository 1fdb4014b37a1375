"""Print the API's OpenAPI schema: `python -m rumination.service.schema > docs/openapi.json`
(the committed copy is checked against the app by the tests)."""

from __future__ import annotations

import json
import sys

from rumination.service.app import create_app
from rumination.settings import Settings


def openapi_text() -> str:
    schema = create_app(Settings.model_validate({})).openapi()
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(openapi_text())
