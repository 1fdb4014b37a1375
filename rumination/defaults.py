"""Default values shared by the settings model and the command line's help texts.

Plain constants with no imports, so `rumination --help` can show them without loading
pydantic and the rest of the framework."""

from typing import Final

LLM_URL = "http://127.0.0.1:8000/v1"
MODEL = "GLM-Z1-Rumination-32B-0414"
BACKEND = "local"
MAX_TURNS = 40
MODE: Final = "rumination"
FORMAT: Final = "md"
SIMULATOR_MODEL = "glm-z1-rumination-simulator"
