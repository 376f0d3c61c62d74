"""How the figures the API serves are rounded: one home. (The selectors and services that compute them call their
Round argument `round`, after the model's field and the ORM lookups beside them, which shadows the builtin there.)"""

import builtins


def rounded(value: float, digits: int) -> float:
    return builtins.round(float(value), digits)


def round_ml(value: float | None) -> float:
    """A volume in mL, to the microlitre."""
    return rounded(value or 0.0, 3)
