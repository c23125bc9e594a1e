"""A scripted model for the code pipeline: three problems, one whose first solution needs
a fix round (and snoops for an API key), one whose explanation does not survive
back-translation, one whose JavaScript translation drops a test."""

from __future__ import annotations

import re
from typing import Any

PROBLEMS: dict[str, dict[str, str]] = {
    "reverse_words": {
        "problem": "Title: Reverse words\nFunction: reverse_words(s)\nProblem: Return the words "
        "of the string s in reverse order joined by single spaces; runs of spaces between "
        "words are ignored. Example: reverse_words('a  b') returns 'b a'.",
        "solution": "def reverse_words(s):\n    return ' '.join(reversed(s.split()))\n",
        "tests": "from solution import reverse_words\n\ndef test_two():\n"
        "    assert reverse_words('hello world') == 'world hello'\n\ndef test_spaces():\n"
        "    assert reverse_words('  a   b ') == 'b a'\n\ndef test_empty():\n"
        "    assert reverse_words('') == ''\n",
        # Rebuilt from the explanation, it splits on single spaces: the explanation was vague.
        "back": "def reverse_words(s):\n    return ' '.join(reversed(s.split(' ')))\n",
        "js": "function reverse_words(s) {\n  return s.split(/\\s+/).filter(Boolean).reverse()"
        ".join(' ');\n}\nmodule.exports = { reverse_words };\n",
        "js_tests": "const { reverse_words } = require('./solution');\n"
        "test('test_two', () => { assertEqual(reverse_words('hello world'), 'world hello'); });\n"
        "test('test_spaces', () => { assertEqual(reverse_words('  a   b '), 'b a'); });\n"
        "test('test_empty', () => { assertEqual(reverse_words(''), ''); });\n",
    },
    "count_vowels": {
        "problem": "Title: Count vowels\nFunction: count_vowels(s)\nProblem: Return how many "
        "characters of s are vowels (a, e, i, o, u), ignoring case. Example: "
        "count_vowels('Hello') returns 2.",
        # First attempt: forgets upper case, and looks for an API key on the way.
        "first": "import os\nprint('key:', os.environ.get('OPENAI_API_KEY', 'none'))\n\n"
        "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s)\n",
        "solution": "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s.lower())\n",
        "tests": "from solution import count_vowels\n\ndef test_hello():\n"
        "    assert count_vowels('Hello') == 2\n\ndef test_upper():\n"
        "    assert count_vowels('AEIOU') == 5\n\ndef test_none():\n"
        "    assert count_vowels('xyz') == 0\n",
        "back": "def count_vowels(s):\n    return len([c for c in s.lower() if c in 'aeiou'])\n",
        "js_first": "function count_vowels(s) {\n  return [...s].filter(c => 'aeiou'.includes(c))"
        ".length;\n}\nmodule.exports = { count_vowels };\n",
        "js": "function count_vowels(s) {\n  return [...s.toLowerCase()].filter(c => "
        "'aeiou'.includes(c)).length;\n}\nmodule.exports = { count_vowels };\n",
        "js_tests": "const { count_vowels } = require('./solution');\n"
        "test('test_hello', () => { assertEqual(count_vowels('Hello'), 2); });\n"
        "test('test_upper', () => { assertEqual(count_vowels('AEIOU'), 5); });\n"
        "test('test_none', () => { assertEqual(count_vowels('xyz'), 0); });\n",
    },
    "running_max": {
        "problem": "Title: Running maximum\nFunction: running_max(xs)\nProblem: Return a list "
        "whose item i is the largest of xs[0..i]. An empty list gives an empty list. "
        "Example: running_max([1, 3, 2]) returns [1, 3, 3].",
        "solution": "def running_max(xs):\n    out = []\n    for x in xs:\n"
        "        out.append(x if not out else max(out[-1], x))\n    return out\n",
        "tests": "from solution import running_max\n\ndef test_example():\n"
        "    assert running_max([1, 3, 2]) == [1, 3, 3]\n\ndef test_empty():\n"
        "    assert running_max([]) == []\n\ndef test_negative():\n"
        "    assert running_max([-2, -5]) == [-2, -2]\n",
        "back": "def running_max(xs):\n    best, out = None, []\n    for x in xs:\n"
        "        best = x if best is None else max(best, x)\n        out.append(best)\n"
        "    return out\n",
        "js": "function running_max(xs) {\n  const out = [];\n  for (const x of xs) "
        "out.push(out.length ? Math.max(out[out.length - 1], x) : x);\n  return out;\n}\n"
        "module.exports = { running_max };\n",
        # The translation quietly drops a test: the verifier's min_tests_from catches it.
        "js_tests": "const { running_max } = require('./solution');\n"
        "test('test_example', () => { assertEqual(running_max([1, 3, 2]), [1, 3, 3]); });\n"
        "test('test_empty', () => { assertEqual(running_max([]), []); });\n",
    },
}
NAMES = list(PROBLEMS)


def fence(code: str, lang: str = "python") -> str:
    return f"Here you go:\n```{lang}\n{code}```\n"


def _which(text: str) -> str:
    for name in NAMES:
        if name in text:
            return name
    raise AssertionError(f"the fake cannot tell which problem this is: {text[:200]}")


def answer(messages: list[dict[str, Any]], **_: Any) -> str:
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    user = next(m["content"] for m in messages if m["role"] == "user")
    if system.startswith("You write programming problems"):
        concept = re.search(r"exercises (.+?)\.\n", user)
        key = sum(map(ord, concept.group(1) if concept else user)) % len(NAMES)
        return PROBLEMS[NAMES[key]]["problem"]
    name = _which(user)
    p = PROBLEMS[name]
    if system.startswith("You write correct"):
        return fence(p.get("first", p["solution"]))
    if system.startswith("You write unit tests"):
        return fence(p["tests"])
    if system.startswith("You fix javascript"):
        return fence(p["js"], "javascript")
    if system.startswith("You fix"):
        return fence(p["solution"])
    if system.startswith("You translate"):
        return fence(p.get("js_first", p["js"]), "javascript") + fence(p["js_tests"], "javascript")
    if system.startswith("You explain"):
        return f"The function {name} walks through its input once and builds the answer."
    if system.startswith("You write python code from a description"):
        return fence(p["back"])
    raise AssertionError(f"unexpected prompt: {system[:80]}")


def stub_answer(request: dict[str, Any]) -> str:
    """The same fake behind the loopback OpenAI-compatible stub server."""
    return answer(request["messages"])
