"""Templates and prompts can arrive inline through the service: they must not reach Python
internals, whichever path (translated or Jinja) an expression takes."""

import pytest
from jinja2.exceptions import SecurityError

from synth.template.expressions import compile_expression, compile_text


@pytest.mark.parametrize(
    "source",
    [
        "x.__class__.__mro__",
        "'{0.__class__}'.format(x)",
        "x.upper.__self__",
        "(x ~ '') .__class__",
    ],
)
def test_expressions_cannot_reach_python_internals(source):
    fn = compile_expression(source, {"x": 0})
    with pytest.raises(SecurityError):
        fn([{"x": "a"}])


def test_text_templates_are_sandboxed_too():
    fn = compile_text("{{ x.__class__.__mro__ }}", {"x": 0})
    with pytest.raises(SecurityError):
        fn([{"x": "a"}])


def test_ordinary_expressions_still_work():
    assert compile_expression("x.upper() ~ '!'", {"x": 0})([{"x": "a"}]) == "A!"
