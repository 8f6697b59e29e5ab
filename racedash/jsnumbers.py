"""JavaScript's number formatting, for text the server writes where the browser would.

The dashboard page carries its first values as text (racedash.pagefields), and the
page's script later writes the same fields with static/js/format.js. Both must give
the same characters, or the values would flicker on the first update. Python's own
formatting differs from JavaScript's at the edges: ``round(2.5)`` is 2 where
``Math.round(2.5)`` is 3, ``f"{0.25:.1f}"`` is ``0.2`` where ``(0.25).toFixed(1)``
is ``0.3``, and ``str(5.0)`` is ``5.0`` where ``String(5)`` is ``5``. These follow
ECMAScript's definitions exactly, on the double's exact value.
"""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

# What String.prototype.trim() removes: ECMAScript's WhiteSpace and LineTerminator.
JS_WHITESPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"


def js_number(value: Any) -> float | None:
    """``value`` as the double a JSON parser in the browser makes of it, when it is a finite number.

    JSON integers become doubles; one too large for a double is Infinity there, so not
    finite; booleans are not numbers in JavaScript.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def js_round(x: float) -> float:
    """``Math.round``: the nearest integer, halves towards +Infinity (``Math.round(-2.5)`` is -2).

    A double, as in JavaScript: show it with :func:`js_string` (``String(Math.round(1e21))`` is ``1e+21``).
    """
    return float((Decimal(x) + Decimal("0.5")).to_integral_value(rounding=ROUND_FLOOR))


def js_to_fixed(x: float, digits: int) -> str:
    """``Number.prototype.toFixed``: halves away from zero on the exact value, ``-0`` as ``0``."""
    if abs(x) >= 1e21:
        return js_string(x)
    if x == 0:
        x = 0.0  # (-0).toFixed(1) is "0.0"
    return str(Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def js_string(x: float) -> str:
    """``String(x)`` of a finite double: its shortest round-trip digits, laid out as ECMAScript does."""
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    exact = Decimal(repr(abs(x))).normalize()  # repr: the shortest digits that round-trip, as in JS
    _, digit_tuple, exponent = exact.as_tuple()
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = k + int(exponent)  # the value is 0.<digits> × 10^n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    power = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{mantissa}e{'+' if power > 0 else '-'}{abs(power)}"


def js_trim(text: str) -> str:
    """``String.prototype.trim``."""
    return text.strip(JS_WHITESPACE)
