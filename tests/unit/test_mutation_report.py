"""The mutation report's classification: what counts against a module's score."""

from __future__ import annotations

from pathlib import Path

from tools.mutation_report import (
    ModuleScore,
    Survivor,
    changed_lines,
    equivalence_reason,
    function_of,
    is_message_only,
    load_equivalents,
    render,
)

DIFF = """--- cift/trading/ledger.py
+++ cift/trading/ledger.py
@@ -1,3 +1,3 @@
 def f(x):
-    if x <= 0:
+    if x < 0:
         return 1
"""


def test_a_diff_gives_the_removed_and_added_lines() -> None:
    assert changed_lines(DIFF) == ("if x <= 0:", "if x < 0:")


def test_the_function_is_the_name_without_the_counter() -> None:
    assert function_of("cift.trading.ledger.x_settle_fill__mutmut_12") == (
        "cift.trading.ledger.x_settle_fill"
    )


def test_a_reworded_message_is_message_only() -> None:
    assert is_message_only(
        'raise InvalidArgument("A fill needs a positive quantity.")',
        'raise InvalidArgument("XXA fill needs a positive quantity.XX")',
    )
    assert is_message_only('raise E(f"{a} is not {b}")', "raise E(None)")
    # A message over two lines, replaced whole.
    assert is_message_only('f"Order {n} exceeds "\nf"the {m} limit.",', "None,")
    assert not is_message_only('"a",\n"b",', "None,")  # names, not prose


def test_a_changed_code_word_or_operator_is_not_message_only() -> None:
    assert not is_message_only('BUY = "buy"', 'BUY = "XXbuyXX"')
    assert not is_message_only("if x <= 0:", "if x < 0:")
    assert not is_message_only('raise E("a b")', 'raise F("a c")')


def test_equivalents_match_on_function_and_mutated_line(tmp_path: Path) -> None:
    listed = tmp_path / "eq.toml"
    listed.write_text(
        '[[equivalent]]\nfunction = "m.x_f"\nmutated = "if x < 0:"\nreason = "x is never 0"\n'
    )
    entries = load_equivalents(listed)
    hit = Survivor("m.x_f__mutmut_3", "m.x_f", "if x <= 0:", "if x < 0:")
    elsewhere = Survivor("m.x_g__mutmut_3", "m.x_g", "if x <= 0:", "if x < 0:")
    assert equivalence_reason(hit, entries) == "x is never 0"
    assert equivalence_reason(elsewhere, entries) is None


def test_message_only_and_equivalent_survivors_leave_the_score() -> None:
    module = ModuleScore("m.py", total=10, killed=7)
    real = Survivor("m.x_f__mutmut_1", "m.x_f", "a + b", "a - b")
    module.survivors.append(real)
    module.message_only.append(Survivor("m.x_f__mutmut_2", "m.x_f", '"a b"', '"XXa bXX"'))
    module.equivalent.append((Survivor("m.x_f__mutmut_3", "m.x_f", "x", "y"), "why"))
    assert module.counted == 8
    assert (module.raw_score, round(module.non_message_score, 1), module.score) == (
        70.0,
        77.8,
        87.5,
    )
    text = render([module])
    assert "| m.py | 10 | 7 (0) | 3 | 1 | 1 | 70.0 % | 77.8 % | 87.5 % |" in text
    assert "`a + b` → `a - b`" in text and "why" in text
