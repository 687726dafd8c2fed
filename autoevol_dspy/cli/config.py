"""Command-line configuration: validated with pydantic, read from TOML or YAML, overridden by options.

A config file holds the same settings as the options of ``autoevol optimize`` and
``autoevol evolve`` (dashes or underscores both work); an option given on the command
line wins over the file. The whole file is validated even where an option overrides it, so
a wrong value in it never waits for the day the option is left out; a server URL with a user
name or password is refused in a file as on the command line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autoevol_dspy.errors import ConfigurationError
from autoevol_dspy.files import read_text
from autoevol_dspy.lm.spec import DEFAULT_TIMEOUT_S
from autoevol_dspy.redact import has_credentials, redact_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["EvolveConfig", "LMSettings", "OptimizeConfig", "PromptFileSettings", "load_config_file", "merge_config",
           "redact_url"]


def _refuse_credentials(value: str | None) -> str | None:
    """A server URL must not carry ``user:password@`` (it would end up in logs and run files)."""
    if has_credentials(value):
        raise ValueError("the URL holds a user name or password; give the server's URL without them and its key in "
                         "OPENAI_API_KEY")
    return value


class LMSettings(BaseModel):
    """Which LMs to use, by spec string (see ``make_lm``), and how long they may answer."""

    model_config = ConfigDict(extra="forbid")

    lm: str = Field("local", description="LM spec for evolution (and, unless set apart, every role)")
    optimizer_lm: str | None = Field(None, description="LM spec of the optimizer (default: --lm)")
    response_lm: str | None = Field(None, description="LM spec that answers evolved instructions (default: --lm)")
    api_base: str | None = Field(None, description="base URL of an OpenAI-compatible server for openai/ specs")
    max_tokens: int = Field(384, ge=16, description="longest reply of the evol LM, in tokens")
    optimizer_max_tokens: int | None = Field(
        None, ge=16, description="longest analysis or rewritten method of the optimizer LM (default: max_tokens)")
    response_max_tokens: int = Field(256, ge=16, description="longest answer of the response LM, in tokens")
    optimizer_temperature: float = Field(0.6, ge=0.0, le=2.0)
    threads: int = Field(2, ge=1, description="LM calls in flight at once")
    timeout: float = Field(DEFAULT_TIMEOUT_S, gt=0, description="seconds one request to an LM server may wait")
    retries: int = Field(3, ge=0, le=20, description="retries of a request that timed out or failed transiently")

    _no_credentials = field_validator("api_base")(_refuse_credentials)


class OptimizeConfig(LMSettings):
    """Settings of ``autoevol optimize``."""

    column: str = "instruction"
    steps: int = Field(10, ge=0)
    candidates: int = Field(5, ge=1)
    batch_size: int = Field(10, ge=1)
    dev_size: int = Field(50, ge=1)
    holdout: float = Field(0.2, ge=0, description="seeds kept out for the held-out check: a share < 1 or a count")
    dev_file: str | None = Field(None, description="the dev set as a file of its own (default: drawn from the seeds)")
    rounds: int = Field(1, ge=1)
    patience: int = Field(1, ge=1)
    seed: int = 0
    max_lm_calls: int | None = Field(None, ge=1)
    storage: str | None = None
    study_name: str | None = Field(None, description="the run's study in the storage (default: the --out folder's name)")
    initial_method: str | None = None
    judge: bool = False
    style: Literal["rewrite", "extend"] | None = Field(
        None, description="rewrite: the LM writes the evolved instruction; extend: it writes an addition (default: "
                          "extend for an in-process model, rewrite otherwise)")
    proposal_style: Literal["rewrite", "amend", "mixed"] | None = Field(
        None, description="rewrite: the optimizer LM rewrites the method; amend: it appends one rule; mixed: rules "
                          "from the failures, general edits and one LM rule (default: mixed for the embedded model, "
                          "rewrite otherwise)")

    @field_validator("holdout")
    @classmethod
    def _share_or_count(cls, value: float) -> float:
        """A share below 1 or a whole count: 1.5 is neither (it would silently become 1)."""
        if value >= 1 and value != int(value):
            raise ValueError(f"must be a share below 1 (0.2) or a whole count of seeds (20), got {value:g}")
        return value

    def result_settings(self) -> dict[str, Any]:
        """The settings that change a run's results; a resumed run directory must match them."""
        keep = ("column", "candidates", "batch_size", "dev_size", "dev_file", "holdout", "rounds", "seed", "style",
                "proposal_style", "lm", "optimizer_lm", "response_lm", "max_tokens", "optimizer_max_tokens",
                "response_max_tokens", "optimizer_temperature", "judge")
        return {key: getattr(self, key) for key in keep}


class EvolveConfig(LMSettings):
    """Settings of ``autoevol evolve``."""

    column: str = "instruction"
    rounds: int = Field(1, ge=1)
    drop_failures: bool = False
    no_response: bool = False
    style: Literal["rewrite", "extend"] | None = Field(
        None, description="the method's style (default: the run directory's, else rewrite)")


class PromptFileSettings(BaseModel):
    """What a config file of ``autoevol prompt`` may set, checked whole (an option that overrides a value
    does not spare it the check); the command's own defaults apply to what it leaves out."""

    model_config = ConfigDict(extra="forbid")

    lm: str | None = None
    optimizer_lm: str | None = None
    api_base: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    optimizer_max_tokens: int | None = Field(None, ge=1)
    local_threads: int | None = Field(None, ge=1)
    threads: int | None = Field(None, ge=1)
    timeout: float | None = Field(None, gt=0)
    retries: int | None = Field(None, ge=0, le=20)
    steps: int | None = Field(None, ge=0)
    candidates: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    dev_size: int | None = Field(None, ge=1)
    holdout: int | None = Field(None, ge=0)
    seed: int | None = None
    max_lm_calls: int | None = Field(None, ge=1)
    input: str | list[str] | None = None
    output: str | None = None
    metric: str | None = None

    _no_credentials = field_validator("api_base")(_refuse_credentials)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or YAML file into a flat dict with underscore keys."""
    file = Path(path)
    if not file.is_file():
        raise ConfigurationError(f"config file not found: {file}")
    text = read_text(file, what="config file")
    try:
        data = tomllib.loads(text) if file.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{file} is not valid {file.suffix.lstrip('.').upper() or 'YAML'}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{file} must hold a table of settings, not a {type(data).__name__}")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def merge_config(model: type[BaseModel], file_values: dict[str, Any], options: dict[str, Any], *,
                 source: str | Path | None = None) -> Any:
    """Validate file settings overridden by the options that were given (``None`` = not given).

    The file's values are validated on their own first (``source`` names the file in the error),
    so one that an option overrides is still checked."""
    if file_values:
        _validate(model, file_values, where=f" in {source}" if source else " in the config file")
    merged = {**file_values, **{key: value for key, value in options.items() if value is not None}}
    return _validate(model, merged, where="")


def _validate(model: type[BaseModel], values: dict[str, Any], *, where: str) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'config'}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise ConfigurationError(f"invalid settings{where}: {problems}") from None
