"""The form of a request: a question, an imperative clause, a request phrase or a code stub."""

from __future__ import annotations

import regex


_IMPERATIVES = frozenset(  # verbs that open an instruction; nouns such as "report" or "study" are left out
    """act adapt add adjust amend analyse analyze answer apply argue arrange assess assign assume begin brainstorm
    build calculate categorize change check choose cite clarify classify combine come compare compile complete
    compose compute condense consider construct continue convert convince correct count craft create critique
    debug decide define demonstrate derive describe design determine develop devise diagnose discuss divide do
    draft draw edit elaborate embrace emphasize enhance ensure enumerate envision estimate evaluate examine
    expand explain explore express extend extract figure fill find finish fix format formulate generate give go
    guess help highlight identify illustrate imagine implement improve include incorporate indicate infer insert
    interpret introduce investigate justify keep list make mention merge modify name offer optimize organize
    outline paraphrase perform persuade pick picture plan polish predict prepare present pretend prioritize
    produce propose prove provide rank read recommend refactor refine reflect reformat reformulate remove rename
    rephrase replace reply respond restate restructure retell return review revise rewrite rework say select
    share shorten show simplify simulate sketch solve sort specify split state submit substitute suggest
    summarise summarize suppose tabulate take tell think transform translate try update use validate verify
    visualize weigh work write""".split()
)
_QUESTION_WORDS = frozenset(
    "how what which why who whom whose is are can could does do did should would will".split()
)
_REQUEST_PHRASES = regex.compile(
    r"\b(?:please|can you|could you|would you|i want you|i need|help me|your (?:task|job|goal)|"
    r"you are (?:given|asked|to)|you (?:should|must|have to)|wonder(?:s|ing)? (?:what|how|which|whether|if)|"
    r"wants? to know|would like to know)\b",
    regex.IGNORECASE,
)
_SENTENCE_BREAK = regex.compile(r"(?<=[.!?:;])\s+|\n+")
_CLAUSE_LEAD = regex.compile(  # a bullet, "and"/"then", quotes or brackets before a clause's first word
    r"^(?:[-*•#>]+|\(?[0-9a-z]{1,2}[.)])?\s*(?:and |then |also |now )*[\"'*(\[]*", regex.IGNORECASE
)
_STUB = regex.compile(r"^[ \t]*+def \w++[ \t]*+\(", regex.MULTILINE)
_CLAUSE_WORDS = regex.compile(r"[\w']+")


def _asks(text: str) -> bool:
    """Whether ``text`` has the form of a request: a question, an imperative clause, a request phrase or a code stub."""
    if "?" in text or _REQUEST_PHRASES.search(text) or _STUB.search(text):
        return True
    for sentence in _SENTENCE_BREAK.split(text):
        for position, clause in enumerate(sentence.split(", ")):
            words = _CLAUSE_WORDS.findall(_CLAUSE_LEAD.sub("", clause.strip()).lower())
            if not words:
                continue
            question = words[0] in _QUESTION_WORDS and (position == 0 or words[0] in ("how", "what"))
            if words[0] in _IMPERATIVES or question:  # "which"/"is" after a comma start relative clauses
                return True
    return False
