"""McNemar's test for two classifiers evaluated on the same samples.

Only the discordant pairs matter: ``b`` = samples A gets right and B gets wrong, ``c`` = the
reverse. Under "equally accurate" each discordant sample is a fair coin, so for few of them
the exact binomial test is used; for many, the chi-square approximation with continuity
correction (Edwards), which is what textbooks tabulate.
"""

from __future__ import annotations

import math

EXACT_BELOW = 25  # b + c below this: exact binomial (the chi-square is poor for small counts)


def mcnemar(b: int, c: int, exact: bool | None = None) -> dict:
    """{'b', 'c', 'method', 'statistic', 'p_value'}; two-sided."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if exact is None:
        exact = n < EXACT_BELOW
    if n == 0:
        return {"b": b, "c": c, "method": "none (no discordant pairs)", "statistic": 0.0, "p_value": 1.0}
    if exact:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
        return {"b": b, "c": c, "method": "exact binomial", "statistic": float(k), "p_value": min(1.0, 2 * tail)}
    chi2 = (abs(b - c) - 1) ** 2 / n
    p = math.erfc(math.sqrt(chi2 / 2))  # survival function of chi-square with 1 degree of freedom
    return {"b": b, "c": c, "method": "chi-square with continuity correction", "statistic": chi2, "p_value": p}


def wilson(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default): good at small n and
    near 0 or 1, where the normal approximation's p +- z*sqrt(p(1-p)/n) leaves [0, 1]."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
