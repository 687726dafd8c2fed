"""The evolving method and how one evolution is judged."""

from autoevol_dspy.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("AnsweredInstead", "AsksNothingNew", "CopiedExample", "EchoesMethod", "EvolInstructRules",
                     "EvolutionCase", "Failure", "FailureDetector", "LLMJudge", "LostKeyContent", "NearCopy",
                     "PaperResponseRules", "Repetition", "default_detectors"), "autoevol_dspy.evolution.detectors"),
    **dict.fromkeys(("INITIAL_METHOD", "EvolInstruct", "default_style"), "autoevol_dspy.evolution.method"),
    "parse_rewritten_instruction": "autoevol_dspy.evolution.parsing",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
